// The admin panel: a few pages over the admin API (/admin/... with CB-Administration-API-Key).
//
// Safety rules kept throughout:
// - the key lives in sessionStorage (gone with the tab) and only travels in the request header:
//   never in a URL, a cookie or the page; a 401 forgets it;
// - everything shown is set with textContent or element properties, never innerHTML (the page's
//   CSP enforces that with Trusted Types);
// - no cookies exist, so a forged cross-site request carries no credential (CSRF).
"use strict";

const KEY = "meetings-admin-key";
const PAGE = 20;
const main = document.getElementById("main");
const status = document.getElementById("status");

// DOM ------------------------------------------------------------------------------------------

// h("a", {href: "#/x", class: "y"}, "text", child...): strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function say(message, kind) {
  status.textContent = message;
  status.className = kind || "";
}

function show(title, ...content) {
  document.title = `${title} · Meetings admin`;
  const heading = h("h1", {}, title);
  main.replaceChildren(heading, ...content);
  main.focus();
}

function table(caption, headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "hint" }, empty);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
  );
}

function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function whenIso(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : "";
}

function badge(state) {
  return h("span", { class: `badge ${state}` }, state);
}

// The admin API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(describe(body) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

class SignedOut extends Error {}

function describe(body) {
  const errors = body && body.errors;
  if (Array.isArray(errors)) return errors.join("; ");
  if (errors && typeof errors === "object") {
    return Object.entries(errors)
      .map(([field, messages]) => `${field}: ${[].concat(messages).join(", ")}`)
      .join("; ");
  }
  return "";
}

async function api(method, path, body, key) {
  const headers = { "CB-Administration-API-Key": key || sessionStorage.getItem(KEY) || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401 && !key) {
    sessionStorage.removeItem(KEY);
    location.hash = "#/signin";
    say("The admin key was refused: sign in again.", "error");
    throw new SignedOut();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(params) {
  return Object.entries(params)
    .filter(([, value]) => value !== "" && value !== undefined && value !== null && value !== 0)
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
    .join("&");
}

// A recording's signed link, opened on the panel's own origin: the gateway that served the panel
// also serves downloads, whatever host PUBLIC_BASE_URL names for outside clients.
function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

// Pages ----------------------------------------------------------------------------------------

function signIn() {
  const input = h("input", { type: "password", id: "key", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const problem = h("p", { id: "sign-in-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "stack", novalidate: true },
    h("label", { for: "key" }, "Admin API key", h("span", { class: "hint" }, "From: .venv/bin/meetings-admin service-key admin")),
    input,
    problem,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const key = input.value.trim();
    if (!key) {
      problem.textContent = "Enter the admin API key.";
      input.focus();
      return;
    }
    try {
      await api("GET", "/admin/settings/meetings", undefined, key);
    } catch (error) {
      problem.textContent =
        error.status === 401 ? "That key was refused." : `Could not sign in: ${error.message}`;
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY, key);
    input.value = "";
    say("Signed in.", "ok");
    location.hash = "#/meetings";
  });
  show("Sign in", h("p", {}, "Sign in with the operators' admin API key. It is kept in this tab only."), form);
  input.focus();
}

function dateToSeconds(value, endOfDay) {
  if (!value) return 0;
  const seconds = Date.parse(`${value}T00:00:00Z`) / 1000;
  return endOfDay ? seconds + 86399 : seconds;
}

async function meetingsPage(params) {
  const field = (id, label, type, hint) =>
    h("label", { for: id }, label, hint ? h("span", { class: "hint" }, hint) : null,
      h("input", { type, id, name: id, value: params.get(id) || "" }));
  const form = h(
    "form",
    { class: "inline", role: "search", "aria-label": "Search meetings" },
    field("name", "Name", "search", "part of the name, or an _id"),
    field("host", "Host", "text", "login or user id"),
    field("from", "Starts from", "date"),
    field("to", "Starts until", "date"),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `#/meetings?${query(Object.fromEntries(data))}`;
  });
  const offset = Number(params.get("offset") || 0);
  const results = h("div", { "aria-live": "polite" }, h("p", {}, "Loading…"));
  show("Meetings", form, results);
  const page = await api(
    "GET",
    `/admin/meetings?${query({
      name: params.get("name") || "",
      host: params.get("host") || "",
      start_from: dateToSeconds(params.get("from"), false),
      start_to: dateToSeconds(params.get("to"), true),
      limit: PAGE,
      offset,
    })}`,
  );
  const rows = page.items.map((m) => [
    h("a", { href: `#/meetings/${encodeURIComponent(m._id)}` }, m.name || "(no name)"),
    when(m.start_date),
    h("span", {}, m.host_login, h("span", { class: "hint" }, ` #${m.host_id}`)),
    String(m.attendees_count),
    m.record ? "on" : "off",
    String(m.recordings_count),
  ]);
  results.replaceChildren(
    h("p", { id: "total" }, `${page.total} meeting${page.total === 1 ? "" : "s"} found`),
    table("Meetings, newest start first", ["Name", "Starts", "Host", "Attendees", "Recording", "Files"], rows, "No meeting matches."),
    pager(params, offset, page.total, "#/meetings"),
  );
}

function pager(params, offset, total, base) {
  const link = (label, to) => {
    const next = new URLSearchParams(params);
    next.set("offset", String(to));
    return h("a", { href: `${base}?${next}` }, label);
  };
  const last = Math.min(offset + PAGE, total);
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    offset > 0 ? link("← Previous", Math.max(0, offset - PAGE)) : null,
    h("span", {}, total ? `${offset + 1}–${last} of ${total}` : ""),
    last < total ? link("Next →", offset + PAGE) : null,
  );
}

function deliveryRows(items, withMeeting) {
  return items.map((d) => [
    h("span", { class: "mono" }, d.id),
    withMeeting && d.meeting_id
      ? h("a", { href: `#/meetings/${encodeURIComponent(d.meeting_id)}` }, d.meeting_id)
      : d.topic,
    badge(d.status),
    String(d.attempts),
    d.last_error || "",
    whenIso(d.status === "sent" ? d.sent_at : d.due_at),
    d.kind === "webhook"
      ? h("span", {}, h("span", { class: "mono" }, d.webhook_id), " ", resendButton(d))
      : d.recipients.map((r) => `${r.email || "(no address)"}: ${r.state}${r.detail ? ` (${r.detail})` : ""}`).join("; "),
  ]);
}

function resendButton(delivery) {
  const button = h("button", { type: "button", class: "secondary", "aria-label": `Re-send delivery ${delivery.id}` }, "Re-send");
  button.disabled = delivery.status === "sending";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const again = await api("POST", `/admin/webhooks/deliveries/${encodeURIComponent(delivery.id)}/resend`, {});
      const copy = again.id !== delivery.id ? ` as delivery ${again.id} (webhook-id ${again.webhook_id})` : "";
      say(`Delivery ${delivery.id} will be sent again now${copy}.`, "ok");
      await route();
    } catch (error) {
      if (error instanceof SignedOut) return;
      say(`Could not re-send: ${error.message}`, "error");
      button.disabled = false;
    }
  });
  return button;
}

async function meetingPage(meetingId) {
  show("Meeting", h("p", {}, "Loading…"));
  const detail = await api("GET", `/admin/meetings/${encodeURIComponent(meetingId)}`);
  const m = detail.meeting;
  const facts = [
    ["Meeting _id", h("span", { class: "mono" }, m._id)],
    ["Host", `${detail.host_login} (#${m.host_id}${detail.host_email ? `, ${detail.host_email}` : ""})`],
    ["Starts", when(m.start_date)],
    ["Ends", when(m.end_date)],
    ["Chat dialog", m.chat_dialog_id ? h("span", { class: "mono", id: "chat-dialog" }, m.chat_dialog_id) : "none"],
    ["Recording", m.record ? "on (the call is being recorded)" : "off"],
    ["Call ended", detail.call_ended_at ? whenIso(detail.call_ended_at) : "not reported"],
    ["Public", m.public ? "yes" : "no"],
    ["Notifications", m.notify ? "on" : "off"],
  ];
  const attendees = m.attendees.map((a) =>
    h("li", {}, [a.id ? `user #${a.id}` : null, a.email || null].filter(Boolean).join(", ")),
  );
  const recordings = detail.recordings.map((r) => [
    whenIso(r.created_at),
    `${r.duration} s`,
    `${r.size} MB`,
    r.participants_ids.join(", "),
    h("a", { href: sameOrigin(r.download_url), download: "", "aria-label": `Download recording ${r.file_uid}` }, "Download"),
  ]);
  const emails = detail.deliveries.filter((d) => d.kind === "email");
  const hooks = detail.deliveries.filter((d) => d.kind === "webhook");
  const title = m.name || "(no name)";
  show(
    `Meeting: ${title}`,
    h("p", {}, h("a", { href: "#/meetings" }, "← All meetings")),
    h("dl", {}, facts.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    h("h2", {}, "Attendees"),
    attendees.length ? h("ul", { id: "attendees" }, attendees) : h("p", { class: "hint" }, "No attendees."),
    h("h2", {}, "Recordings"),
    h("p", { class: "hint" }, "Download links are signed and expire; reload the page for fresh ones."),
    table("Recordings, oldest first", ["Created", "Duration", "Size", "Participants", "File"], recordings, "No recordings."),
    detail.recordings.length ? deleteRecordings(m._id, detail.recordings.length) : null,
    h("h2", {}, "Notification emails"),
    table("Emails", ["Row", "Topic", "Status", "Attempts", "Last error", "Due / sent", "Recipients"], deliveryRows(emails, false), "No emails."),
    h("h2", {}, "Webhook deliveries"),
    table("Webhooks", ["Row", "Topic", "Status", "Attempts", "Last error", "Due / sent", "Webhook-id"], deliveryRows(hooks, false), "No webhook deliveries."),
  );
}

function deleteRecordings(meetingId, count) {
  const area = h("div", {});
  const start = h("button", { type: "button", class: "danger" }, `Delete all ${count} recording${count === 1 ? "" : "s"}…`);
  start.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger" }, "Yes, delete them");
    const no = h("button", { type: "button", class: "secondary" }, "Cancel");
    const box = h(
      "div",
      { class: "confirm", role: "alertdialog", "aria-labelledby": "confirm-text" },
      h("p", { id: "confirm-text" }, `Delete ${count} recording file${count === 1 ? "" : "s"} of this meeting for good? This cannot be undone.`),
      yes, " ", no,
    );
    no.addEventListener("click", () => {
      area.replaceChildren(start);
      start.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api("DELETE", `/admin/meetings/recordings/${encodeURIComponent(meetingId)}`);
        say("Recordings deleted.", "ok");
        await route();
      } catch (error) {
        if (!(error instanceof SignedOut)) say(`Could not delete: ${error.message}`, "error");
      }
    });
    area.replaceChildren(box);
    no.focus();
  });
  area.append(start);
  return area;
}

const SAMPLE_ID = "65f1c0ffee0000000000abcd";

async function settingsPage() {
  show("Settings", h("p", {}, "Loading…"));
  const current = await api("GET", "/admin/settings/meetings");
  const template = h("input", { type: "text", id: "meeting_url_template", name: "meeting_url_template", value: current.meeting_url_template, required: true, "aria-describedby": "preview" });
  const preview = h("output", { id: "preview", for: "meeting_url_template", class: "mono" });
  const render = () => {
    preview.textContent = template.value.includes("%s")
      ? template.value.replace("%s", SAMPLE_ID)
      : "(the template needs %s where the meeting _id goes)";
  };
  template.addEventListener("input", render);
  render();
  const sender = h("input", { type: "text", id: "sender", name: "sender", value: current.sender });
  const appName = h("input", { type: "text", id: "app_name", name: "app_name", value: current.app_name });
  const recordingEmail = h("input", { type: "checkbox", id: "recording_email", name: "recording_email", checked: current.recording_email });
  const toAttendees = h("input", { type: "checkbox", id: "recording_email_attendees", name: "recording_email_attendees", checked: current.recording_email_attendees });
  const linkDays = h("input", { type: "number", id: "recording_link_days", name: "recording_link_days", min: 1, max: 7, value: String(current.recording_link_days) });
  const url = h("input", { type: "url", id: "webhook_url", name: "webhook_url", value: current.webhook_url });
  const enabled = h("input", { type: "checkbox", id: "webhook_enabled", name: "webhook_enabled", checked: current.webhook_enabled });
  const problem = h("p", { class: "error", role: "alert", id: "settings-error" });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "settings-heading" },
    h("h2", { id: "settings-heading" }, "Meetings"),
    h("label", { for: "meeting_url_template" }, "Meeting URL template", h("span", { class: "hint" }, "%s is replaced by the meeting _id")),
    template,
    h("p", {}, "Preview of a link: ", preview),
    h("label", { for: "sender" }, "Sender address of notification emails"),
    sender,
    h("label", { for: "app_name" }, "Service name in emails"),
    appName,
    h("h2", {}, "Recording-done email"),
    h("label", { class: "check", for: "recording_email" }, recordingEmail, "Email the host when a meeting's recordings are ready"),
    h("label", { class: "check", for: "recording_email_attendees" }, toAttendees, "Email the attendees too"),
    h("label", { for: "recording_link_days" }, "Its download links work for (days)", h("span", { class: "hint" }, "1 to 7; the panel always has a fresh link"), linkDays),
    h("h2", {}, "Recording webhook"),
    h("label", { for: "webhook_url" }, "Webhook URL"),
    url,
    h("label", { class: "check", for: "webhook_enabled" }, enabled, "Webhook enabled"),
    current.webhook_disabled_reason ? h("p", { class: "error" }, `Turned off by the service: ${current.webhook_disabled_reason}`) : null,
    problem,
    h("button", { type: "submit" }, "Save settings"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    try {
      await api("PUT", "/admin/settings/meetings", {
        meeting_url_template: template.value,
        sender: sender.value,
        app_name: appName.value,
        recording_email: recordingEmail.checked,
        recording_email_attendees: toAttendees.checked,
        recording_link_days: Number(linkDays.value),
        webhook_url: url.value,
        webhook_enabled: enabled.checked,
      });
      say("Settings saved.", "ok");
    } catch (error) {
      if (!(error instanceof SignedOut)) problem.textContent = `Not saved: ${error.message}`;
    }
  });
  const count = h("p", { id: "secret-count" }, `Secrets signing deliveries now: ${current.webhook_secrets}.`);
  const shown = h("div", { "aria-live": "polite" });
  const rotate = h("button", { type: "button", id: "rotate" }, "Rotate the signing secret");
  rotate.addEventListener("click", async () => {
    rotate.disabled = true;
    try {
      const made = await api("POST", "/admin/settings/meetings/webhook_secret", {});
      const code = h("code", { id: "new-secret", tabindex: "0" }, made.secret);
      shown.replaceChildren(
        h("div", { class: "secret" },
          h("p", {}, h("strong", {}, "New secret (shown only this once: copy it to the receiver now):")),
          code,
          h("p", { class: "hint" }, "The previous secret keeps signing too for a day, so receivers can switch without a gap.")),
      );
      code.focus();
      const now = await api("GET", "/admin/settings/meetings");
      count.textContent = `Secrets signing deliveries now: ${now.webhook_secrets}.`;
    } catch (error) {
      if (!(error instanceof SignedOut)) say(`Could not rotate: ${error.message}`, "error");
    } finally {
      rotate.disabled = false;
    }
  });
  show(
    "Settings",
    form,
    h("h2", {}, "Webhook signing secret"),
    count,
    rotate,
    shown,
  );
}

// Emails: each kind's template (subject, HTML, plain text), previewed at phone and desktop
// widths in frames of its own link (its CSP lets the email style itself and nothing else), and
// a test email to one address.
const KIND_NAMES = {
  invitation: "Invitation",
  update: "Time changed",
  attendee_added: "Added attendee",
  reminder: "Reminder",
  cancellation: "Cancellation",
  recording_done: "Recording done",
};
const PARTS = ["subject", "html", "text"];

async function emailsPage(params) {
  show("Emails", h("p", {}, "Loading…"));
  const listed = await api("GET", "/admin/email_templates");
  const kind = KIND_NAMES[params.get("kind")] ? params.get("kind") : "invitation";
  const meetingId = params.get("meeting") || "";
  const current = listed.templates.find((t) => t.kind === kind);
  const picker = h(
    "form",
    { class: "inline", "aria-label": "Pick an email and a meeting" },
    h("label", { for: "kind" }, "Email",
      h("select", { id: "kind", name: "kind" },
        listed.templates.map((t) => h("option", { value: t.kind, selected: t.kind === kind }, KIND_NAMES[t.kind] || t.kind)))),
    h("label", { for: "meeting" }, "Meeting _id", h("span", { class: "hint" }, "empty: sample data"),
      h("input", { type: "text", id: "meeting", name: "meeting", value: meetingId, spellcheck: "false" })),
    h("button", { type: "submit" }, "Show"),
  );
  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/emails?${query(Object.fromEntries(new FormData(picker)))}`;
  });
  const fields = {
    subject: h("input", { type: "text", id: "part-subject", name: "subject", value: current.subject, spellcheck: "false" }),
    html: h("textarea", { id: "part-html", name: "html", rows: 14, spellcheck: "false" }),
    text: h("textarea", { id: "part-text", name: "text", rows: 10, spellcheck: "false" }),
  };
  fields.html.value = current.html; // a textarea's content is its value, not an attribute
  fields.text.value = current.text;
  const labels = { subject: "Subject", html: "HTML", text: "Plain text" };
  const problems = Object.fromEntries(PARTS.map((part) => [part, h("p", { class: "error", role: "alert", id: `error-${part}` })]));
  const editor = h(
    "form",
    { class: "stack wide", "aria-labelledby": "editor-heading" },
    h("h2", { id: "editor-heading" }, `Template: ${KIND_NAMES[kind]}`),
    h("p", { class: "hint", id: "custom" },
      current.custom.length ? `Changed: ${current.custom.join(", ")} (last ${whenIso(current.updated_at)}); the rest is built-in.` : "Built-in template."),
    PARTS.map((part) => [
      h("label", { for: `part-${part}` }, labels[part], current.custom.includes(part) ? h("span", { class: "hint" }, "changed") : null),
      fields[part],
      problems[part],
    ]),
    h("div", { class: "buttons" },
      h("button", { type: "submit", id: "save" }, "Save template"),
      " ",
      resetButton(kind, current.custom.length > 0)),
  );
  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const part of PARTS) problems[part].textContent = "";
    try {
      await api("PUT", `/admin/email_templates/${kind}`, Object.fromEntries(PARTS.map((p) => [p, fields[p].value])));
      say("Template saved: emails use it from now on.", "ok");
      await route();
    } catch (error) {
      if (error instanceof SignedOut) return;
      const byField = (error.body && error.body.errors) || {};
      let shown = false;
      for (const part of PARTS) {
        if (byField[part]) {
          problems[part].textContent = [].concat(byField[part]).join("; ");
          shown = true;
        }
      }
      say(shown ? "Not saved: see the messages under the fields." : `Not saved: ${error.message}`, "error");
    }
  });
  const variables = h("details", {},
    h("summary", {}, "Variables the templates see (Jinja2 syntax, e.g. {{ meeting.name }})"),
    h("dl", { id: "variables" }, Object.entries(listed.variables).sort().map(([name, what]) => [h("dt", { class: "mono" }, name), h("dd", {}, what)])));
  const preview = h("section", { "aria-labelledby": "preview-heading", id: "preview" }, h("h2", { id: "preview-heading" }, "Preview"), h("p", {}, "Rendering…"));
  show("Emails", picker, variables, editor, preview, testForm(kind, meetingId));
  try {
    const found = await api("POST", `/admin/email_templates/${kind}/preview`, { meeting_id: meetingId });
    const frame = (width, label) =>
      h("figure", { class: "frame" },
        h("figcaption", {}, label),
        h("iframe", { src: found.html_url, width, height: 760, sandbox: "", title: `${label} preview of the email`, class: `w${width}` }));
    preview.replaceChildren(
      h("h2", { id: "preview-heading" }, "Preview"),
      h("p", { class: "error", role: "alert", hidden: !found.fallback }, found.fallback ? `Shown with the built-in template: ${found.fallback}` : ""),
      h("p", {}, h("strong", {}, "Subject: "), h("span", { id: "preview-subject" }, found.subject)),
      h("div", { class: "frames" }, frame(375, "Phone, 375 px"), frame(1024, "Desktop, 1024 px")),
      h("h3", {}, "Plain text part"),
      h("pre", { id: "preview-text" }, found.text),
    );
  } catch (error) {
    if (error instanceof SignedOut) return;
    preview.replaceChildren(h("h2", { id: "preview-heading" }, "Preview"), h("p", { class: "error", role: "alert" }, `No preview: ${error.message}`));
  }
}

function resetButton(kind, changed) {
  const button = h("button", { type: "button", class: "secondary", id: "reset" }, "Back to the built-in template");
  button.disabled = !changed;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("DELETE", `/admin/email_templates/${kind}`);
      say("The built-in template applies again.", "ok");
      await route();
    } catch (error) {
      if (!(error instanceof SignedOut)) say(`Could not reset: ${error.message}`, "error");
      button.disabled = false;
    }
  });
  return button;
}

function testForm(kind, meetingId) {
  const to = h("input", { type: "email", id: "test-to", name: "to", required: true, autocomplete: "email" });
  const form = h(
    "form",
    { class: "inline", "aria-labelledby": "test-heading" },
    h("h2", { id: "test-heading" }, "Send a test email"),
    h("label", { for: "test-to" }, "To", to),
    h("button", { type: "submit" }, "Send test email"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const row = await api("POST", `/admin/email_templates/${kind}/test`, { meeting_id: meetingId, to: to.value });
      say(`Test email queued (delivery ${row.id}): it goes out within seconds.`, "ok");
    } catch (error) {
      if (!(error instanceof SignedOut)) say(`Not sent: ${error.message}`, "error");
    }
  });
  return form;
}

async function webhooksPage(params) {
  const offset = Number(params.get("offset") || 0);
  show("Webhook deliveries", h("p", {}, "Loading…"));
  const page = await api("GET", `/admin/webhooks/deliveries?${query({ limit: PAGE, offset })}`);
  show(
    "Webhook deliveries",
    h("p", { class: "hint" }, "Re-send: a delivery not sent yet is due again now (same webhook-id); a sent one is sent again as a copy with a new webhook-id."),
    table("Deliveries, newest first", ["Row", "Meeting", "Status", "Attempts", "Last error", "Due / sent", "Webhook-id"], deliveryRows(page.items, true), "No webhook deliveries yet."),
    pager(params, offset, page.total, "#/webhooks"),
  );
}

// Dashboard ------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 30000;
let refreshTimer = null;

// s("line", {x1: 0}, child...): an SVG element (h() makes HTML ones).
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// 1, 2 or 5 times a power of ten, at least `value`: round numbers on the axis.
function roundUp(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= value);
}

function number(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString("en") : String(Math.round(value * 10) / 10);
}

// A chart of `series` ({name, values (null: no data), bars}) over `labels` (times), drawn as
// SVG by the panel: no charting library, nothing loaded from elsewhere. Each series keeps its
// numbers in data-values, and each point says them in its <title> (a tooltip, and for screen
// readers).
function chart(id, title, unit, labels, series) {
  const W = 640, H = 190, L = 52, R = 10, T = 10, B = 26;
  const seen = series.flatMap((line) => line.values).filter((v) => v !== null && v !== undefined);
  const top = roundUp(Math.max(1, ...seen));
  const step = (W - L - R) / labels.length;
  const x = (i) => L + step * (i + 0.5);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const svg = s("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-title` },
    s("title", { id: `${id}-title` }, `${title} (${unit})`));
  for (const v of [0, top / 2, top]) {
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)));
  }
  for (const i of [0, Math.floor(labels.length / 2), labels.length - 1]) {
    svg.append(s("text", { class: "tick", x: x(i), y: H - 8, "text-anchor": "middle" }, labels[i].slice(11, 16)));
  }
  const width = (step * 0.8) / Math.max(1, series.filter((line) => line.bars).length);
  let bar = 0;
  series.forEach((line, n) => {
    const group = s("g", { class: `series s${n}`, "data-name": line.name, "data-values": line.values.map((v) => v ?? "").join(",") });
    const offset = line.bars ? bar++ : 0;
    let path = "";
    line.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const tip = s("title", {}, `${labels[i].slice(0, 16).replace("T", " ")} UTC: ${number(v)} ${line.name}`);
      if (line.bars) {
        group.append(s("rect", { x: x(i) - step * 0.4 + offset * width, y: y(v), width, height: y(0) - y(v) }, tip));
        return;
      }
      const joined = i > 0 && line.values[i - 1] !== null && line.values[i - 1] !== undefined;
      path += `${joined ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      group.append(s("circle", { cx: x(i), cy: y(v), r: 2.5 }, tip));
    });
    if (path) group.prepend(s("path", { d: path }));
    svg.append(group);
  });
  const legend = h("ul", { class: "legend" }, series.map((line, n) => {
    const last = [...line.values].reverse().find((v) => v !== null && v !== undefined);
    return h("li", { class: `s${n}` }, h("span", { class: "swatch", "aria-hidden": "true" }), `${line.name}: ${number(last)}`);
  }));
  return h("figure", { class: "chart-box" }, h("figcaption", {}, `${title} (${unit})`), svg, legend);
}

function percent(part, whole) {
  return whole ? (100 * part) / whole : null;
}

async function dashboardPage() {
  clearTimeout(refreshTimer);
  const board = await api("GET", "/admin/dashboard");
  const minutes = board.minutes.map((m) => m.start);
  const hours = board.hours.map((m) => m.start);
  const pick = (rows, name) => rows.map((row) => (name in row ? row[name] : null));
  const alerts = board.alerts.length
    ? h("div", { class: "alert-banner", role: "alert" }, board.alerts.map((text) => h("p", {}, text)))
    : null;
  const backlog = table("The outbox now", ["Kind", "Due, not yet sent", "Being sent", "Oldest due"],
    board.backlog.map((b) => [b.kind, String(b.due), String(b.sending), b.oldest_due_seconds ? `${number(b.oldest_due_seconds)} s ago` : "–"]), "");
  const webhook = h("p", {}, "Webhook endpoint: ", badge(board.webhook_state),
    board.webhook_disabled_reason ? ` ${board.webhook_disabled_reason}` : "");
  show("Dashboard", alerts, h("div", { class: "charts" },
    chart("requests", "Requests per minute", "requests", minutes, [
      { name: "requests", values: pick(board.minutes, "requests") },
      { name: "4xx", values: pick(board.minutes, "client_errors") },
      { name: "5xx", values: pick(board.minutes, "server_errors") },
    ]),
    chart("error-rate", "Server error rate", "% of requests", minutes, [
      { name: "5xx %", values: board.minutes.map((m) => percent(m.server_errors, m.requests)) },
    ]),
    chart("latency", "Latency", "ms", minutes, [
      { name: "p50", values: pick(board.minutes, "p50_ms") },
      { name: "p99", values: pick(board.minutes, "p99_ms") },
    ]),
    chart("backlog", "Outbox backlog", "messages", minutes, [
      { name: "waiting", values: pick(board.minutes, "backlog") },
    ]),
    chart("oldest-due", "Oldest due message", "seconds waiting", minutes, [
      { name: "age", values: pick(board.minutes, "oldest_due_seconds") },
    ]),
    chart("lateness", "Reminder lateness", "ms", minutes, [
      { name: "p50", values: pick(board.minutes, "late_p50_ms") },
      { name: "p99", values: pick(board.minutes, "late_p99_ms") },
    ]),
    chart("deliveries", "Deliveries per hour", "attempts", hours, [
      { name: "emails sent", values: pick(board.hours, "emails_sent"), bars: true },
      { name: "emails failed", values: pick(board.hours, "emails_failed"), bars: true },
      { name: "webhooks sent", values: pick(board.hours, "webhooks_sent"), bars: true },
      { name: "webhooks failed", values: pick(board.hours, "webhooks_failed"), bars: true },
    ]),
  ), h("h2", {}, "Delivery now"), webhook, backlog,
  h("p", { class: "hint" }, "Every replica's activity, stored each few seconds; refreshed every 30 s. The same numbers are on /metrics for Prometheus."));
  refreshTimer = setTimeout(() => {
    if (location.hash.startsWith("#/dashboard")) route();
  }, REFRESH_MS);
}

// Routing --------------------------------------------------------------------------------------

async function route() {
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(search || "");
  const signedIn = Boolean(sessionStorage.getItem(KEY));
  document.getElementById("nav").hidden = !signedIn;
  if (!signedIn || path === "/signin") {
    if (signedIn) {
      location.hash = "#/meetings";
      return;
    }
    signIn();
    return;
  }
  try {
    const meeting = path.match(/^\/meetings\/([^/]+)$/);
    if (meeting) await meetingPage(decodeURIComponent(meeting[1]));
    else if (path === "/settings") await settingsPage();
    else if (path === "/webhooks") await webhooksPage(params);
    else if (path === "/emails") await emailsPage(params);
    else if (path === "/dashboard") await dashboardPage();
    else await meetingsPage(params);
  } catch (error) {
    if (error instanceof SignedOut) return;
    const message = error.status === 404 ? "Not found." : `Something went wrong: ${error.message}`;
    show("Error", h("p", { class: "error", role: "alert" }, message), h("p", {}, h("a", { href: "#/meetings" }, "Back to meetings")));
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  say("Signed out.");
  location.hash = "#/signin";
});
window.addEventListener("hashchange", () => {
  if (!location.hash.startsWith("#/signin")) say("");
  route();
});
route();
