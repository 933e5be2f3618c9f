"""Transport: the gRPC servicers, proto <-> domain conversion and the @rpc.handler decorator.
The only code that imports the generated `meetings.v1` modules; no SQL, no business rules."""
