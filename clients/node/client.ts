// A Node client of the Meetings API: @grpc/grpc-js with the stubs ts-proto writes for it
// (`make stubs`, gen/stubs/ts). tests/clients/test_node.py compiles it (tsconfig.json) and runs
//
//   MEETINGS_TOKEN=<cb-token> node build/clients/node/client.js <host:port> <attendee user id>
//
// against the server itself and against the gateway. It runs one scenario (create, list, page,
// update with a field mask, a field error, calls without a valid token) and prints one JSON
// report on stdout for the test to judge. It exits non-zero, the error on stderr, only when a
// call that must succeed fails or one that must fail succeeds. The token comes from the
// environment rather than argv, which any process listing shows.
import {
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import type { Any } from "../../gen/stubs/ts/google/protobuf/any.js";
import { BadRequest, ErrorInfo } from "../../gen/stubs/ts/google/rpc/error_details.js";
import { Status } from "../../gen/stubs/ts/google/rpc/status.js";
import {
  CreateMeetingRequest,
  type DeepPartial,
  GetMeetingRequest,
  ListMeetingsPageRequest,
  ListMeetingsRequest,
  Meeting,
  type MeetingInput,
  MeetingServiceClient,
  UpdateMeetingRequest,
} from "../../gen/stubs/ts/meetings/v1/meetings.js";

const CALL_TIMEOUT_MS = 10_000;
// 2030-01-01T00:00:00Z, in whole unix seconds (the server refuses fractions).
const START = 1_893_456_000;
const HOUR = 3_600;
const DAY = 86_400;
// Where a server puts the google.rpc.Status with the error's details (binary, as a -bin key).
const STATUS_DETAILS_KEY = "grpc-status-details-bin";

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;

interface ErrorReport {
  code: number;
  message: string;
  // The google.rpc.Status of the details trailer (null without one): its code and message
  // must agree with the call's.
  status: { code: number; message: string } | null;
  fieldViolations: { field: string; description: string }[];
  errorInfo: { reason: string; domain: string } | null;
  // Type URLs of details other than those two.
  otherDetails: string[];
}

// A message in the proto3 JSON mapping (what ts-proto's toJSON returns), as Python's
// json_format prints it too.
type Proto3Json = unknown;

interface Report {
  created: {
    id: string;
    notifyBeforeMetric: string | null;
    // JSON has no undefined: the typed facts that the proto3 JSON below cannot show.
    timezoneIsUndefined: boolean;
    chatDialogId: string;
    json: Proto3Json;
  };
  listed: string[];
  page: { totalEntries: number; limit: number; skip: number; ids: string[] };
  updated: Proto3Json;
  fetched: Proto3Json;
  fieldError: ErrorReport;
  unauthenticated: { missing: ErrorReport; wrong: ErrorReport };
}

function callOptions(): Partial<CallOptions> {
  return { deadline: Date.now() + CALL_TIMEOUT_MS };
}

/** One unary call, with a deadline, as a promise (`method` bound to its client: grpc-js's
 * methods need it as `this`). */
function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, metadata, callOptions(), (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** Every message of a server stream, once it has ended. */
function collect<T>(stream: ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const items: T[] = [];
    stream.on("data", (item: T) => items.push(item));
    stream.on("error", reject);
    stream.on("end", () => resolve(items));
  });
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && "metadata" in error && error.metadata instanceof Metadata;
}

/** The error of a call that must fail. */
async function failure(call: Promise<unknown>, what: string): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    if (isServiceError(error)) return error;
    throw error;
  }
  throw new Error(`${what} succeeded, but must fail`);
}

/** The call's google.rpc.Status, if the server sent one beside the status code. */
function richStatus(error: ServiceError): Status | null {
  // grpc-js gives a -bin key's value as a Buffer, already base64-decoded.
  const [value] = error.metadata.get(STATUS_DETAILS_KEY);
  return value instanceof Buffer ? Status.decode(value) : null;
}

/** Unpacks one detail by the message name its type URL ends in. */
function addDetail(report: ErrorReport, detail: Any): void {
  const name = detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1);
  switch (name) {
    case "google.rpc.BadRequest":
      for (const { field, description } of BadRequest.decode(detail.value).fieldViolations) {
        report.fieldViolations.push({ field, description });
      }
      break;
    case "google.rpc.ErrorInfo": {
      const { reason, domain } = ErrorInfo.decode(detail.value);
      report.errorInfo = { reason, domain };
      break;
    }
    default:
      report.otherDetails.push(detail.typeUrl);
  }
}

function errorReport(error: ServiceError): ErrorReport {
  const status = richStatus(error);
  const report: ErrorReport = {
    code: error.code,
    message: error.details,
    status: status && { code: status.code, message: status.message },
    fieldViolations: [],
    errorInfo: null,
    otherDetails: [],
  };
  for (const detail of status?.details ?? []) addDetail(report, detail);
  return report;
}

/** An hour-long meeting, `day` days after START. */
function meetingOn(day: number, name: string): DeepPartial<MeetingInput> {
  const startDate = START + day * DAY;
  return { name, startDate, endDate: startDate + HOUR };
}

function createdReport(meeting: Meeting): Report["created"] {
  return {
    id: meeting.id,
    notifyBeforeMetric: meeting.notifyBefore?.metric ?? null,
    timezoneIsUndefined: meeting.timezone === undefined,
    chatDialogId: meeting.chatDialogId,
    json: Meeting.toJSON(meeting),
  };
}

/** The calls of the scenario, as the host (`auth`) unless told otherwise. */
class Scenario {
  constructor(
    private readonly client: MeetingServiceClient,
    private readonly auth: Metadata,
    private readonly attendeeId: number,
  ) {}

  create(input: DeepPartial<MeetingInput>): Promise<Meeting> {
    const request = CreateMeetingRequest.fromPartial({ meeting: input });
    return unary(this.client.createMeeting.bind(this.client), request, this.auth);
  }

  get(id: string, auth = this.auth): Promise<Meeting> {
    return unary(this.client.getMeeting.bind(this.client), GetMeetingRequest.fromPartial({ id }), auth);
  }

  async run(): Promise<Report> {
    const first = await this.create({
      ...meetingOn(0, "Weekly sync"),
      attendees: [{ id: this.attendeeId }, { email: "guest@example.org" }],
      notifyBefore: { metric: "hours", value: 1 },
      notify: true,
    });
    await this.create(meetingOn(1, "Second sync"));
    await this.create(meetingOn(2, "Third sync"));
    const listed = await this.listed();
    const page = await this.page();
    const { updated, fetched } = await this.rename(first.id);
    const fieldError = await this.fieldError();
    const unauthenticated = await this.unauthenticated(first.id);
    return { created: createdReport(first), listed, page, updated, fetched, fieldError, unauthenticated };
  }

  async listed(): Promise<string[]> {
    const stream = this.client.listMeetings(ListMeetingsRequest.fromPartial({}), this.auth, callOptions());
    return (await collect(stream)).map((m) => m.id);
  }

  async page(): Promise<Report["page"]> {
    const request = ListMeetingsPageRequest.fromPartial({ limit: 2, offset: 1 });
    const page = await unary(this.client.listMeetingsPage.bind(this.client), request, this.auth);
    const { totalEntries, limit, skip } = page;
    return { totalEntries, limit, skip, ids: page.items.map((m) => m.id) };
  }

  /** Sets name and record, but the mask names only `name`: record must stay as it was. */
  async rename(id: string): Promise<{ updated: Proto3Json; fetched: Proto3Json }> {
    const request = UpdateMeetingRequest.fromPartial({
      id,
      meeting: { name: "renamed", record: true },
      // ts-proto types a google.protobuf.FieldMask as its paths: string[].
      updateMask: ["name"],
    });
    const updated = await unary(this.client.updateMeeting.bind(this.client), request, this.auth);
    return { updated: Meeting.toJSON(updated), fetched: Meeting.toJSON(await this.get(id)) };
  }

  async fieldError(): Promise<ErrorReport> {
    const attendees = [{ email: "ok@example.com" }, { email: "not an address" }];
    const input = { ...meetingOn(3, "Bad attendee"), attendees };
    return errorReport(await failure(this.create(input), "CreateMeeting with an invalid email"));
  }

  async unauthenticated(id: string): Promise<Report["unauthenticated"]> {
    const missing = await failure(this.get(id, new Metadata()), "GetMeeting without a token");
    const wrong = await failure(this.get(id, tokenMetadata("not-a-token")), "GetMeeting with a wrong token");
    return { missing: errorReport(missing), wrong: errorReport(wrong) };
  }
}

function tokenMetadata(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set("cb-token", token);
  return metadata;
}

async function main(): Promise<void> {
  const [target, attendee] = process.argv.slice(2);
  const attendeeId = Number(attendee);
  const token = process.env["MEETINGS_TOKEN"];
  if (!target || !Number.isInteger(attendeeId) || !token) {
    throw new Error("usage: MEETINGS_TOKEN=<cb-token> node client.js <host:port> <attendee user id>");
  }
  const client = new MeetingServiceClient(target, credentials.createInsecure());
  try {
    const report = await new Scenario(client, tokenMetadata(token), attendeeId).run();
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
