"""The domain: meetings, sessions, recordings, notifications and settings, as plain values and
rules. It owns transactions; it never imports transport or generated code."""
