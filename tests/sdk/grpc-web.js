// The gRPC-Web client of the live-chat scenarios (scenarios/live.js), as a browser app would
// build it: stubs generated from our protos by protoc-gen-es, and Connect-ES's gRPC-Web
// transport over fetch. (Google's grpc-web package needs protoc-gen-grpc-web, a native binary
// published outside npm.) `make test` bundles this with esbuild into gen/grpc-web.js, one file
// that page.html serves to Chromium and that Node imports as it is.
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { ChatService } from './gen/stubs/meetings/v1/chat_pb.js';

export function chatClient(baseUrl) {
  return createClient(ChatService, createGrpcWebTransport({ baseUrl }));
}
