import com.google.protobuf.Any;
import com.google.protobuf.FieldMask;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import io.github.meetingsapi.meetings.v1.Attendee;
import io.github.meetingsapi.meetings.v1.CreateMeetingRequest;
import io.github.meetingsapi.meetings.v1.GetMeetingRequest;
import io.github.meetingsapi.meetings.v1.ListMeetingsPageRequest;
import io.github.meetingsapi.meetings.v1.ListMeetingsRequest;
import io.github.meetingsapi.meetings.v1.Meeting;
import io.github.meetingsapi.meetings.v1.MeetingInput;
import io.github.meetingsapi.meetings.v1.MeetingPage;
import io.github.meetingsapi.meetings.v1.MeetingServiceGrpc;
import io.github.meetingsapi.meetings.v1.MeetingServiceGrpc.MeetingServiceBlockingStub;
import io.github.meetingsapi.meetings.v1.NotifyBefore;
import io.github.meetingsapi.meetings.v1.UpdateMeetingRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A grpc-java client of the MeetingService, built on the stubs of `make stubs`: runs one
 * scenario (create, list, page, masked update, a field error, a call without a token) and
 * prints what it read as one JSON report on stdout, for tests/clients/test_java.py.
 *
 * <p>Usage: {@code java MeetingsClient HOST:PORT ATTENDEE_USER_ID}, with the signed-in user's
 * session token in the environment variable MEETINGS_TOKEN (not in argv, which any local user
 * can read). A call that should succeed and fails ends the program with its exception.
 */
public final class MeetingsClient {
  private static final long CALL_SECONDS = 10;
  private static final Metadata.Key<String> TOKEN =
      Metadata.Key.of("cb-token", Metadata.ASCII_STRING_MARSHALLER);
  // Whole unix seconds (the server refuses fractions); an hour apart, so the list's order
  // (by start_date) is the order of creation.
  private static final long FIRST_START = 1893456000;
  private static final long HOUR = 3600;

  private final MeetingServiceBlockingStub signedIn;
  private final MeetingServiceBlockingStub anonymous;

  private MeetingsClient(ManagedChannel channel, String token) {
    Metadata headers = new Metadata();
    headers.put(TOKEN, token);
    anonymous = MeetingServiceGrpc.newBlockingStub(channel);
    signedIn = anonymous.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
  }

  public static void main(String[] args) throws InterruptedException {
    String token = System.getenv("MEETINGS_TOKEN");
    if (args.length != 2 || token == null) {
      System.err.println("usage: MEETINGS_TOKEN=... java MeetingsClient HOST:PORT ATTENDEE_ID");
      System.exit(2);
    }
    // The server and the gateway both speak h2c: gRPC without TLS.
    ManagedChannel channel = ManagedChannelBuilder.forTarget(args[0]).usePlaintext().build();
    try {
      MeetingsClient client = new MeetingsClient(channel, token);
      System.out.println(Json.write(client.run(Integer.parseInt(args[1]))));
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private Map<String, Object> run(int attendeeId) {
    Map<String, Object> report = new LinkedHashMap<>();
    Meeting first = create(firstMeeting(attendeeId));
    report.put("created", typedFields(first));
    List<String> ids = new ArrayList<>(List.of(first.getId()));
    for (int n = 1; n <= 2; n++) {
      ids.add(create(plainMeeting("meeting " + n, FIRST_START + n * HOUR)).getId());
    }
    report.put("created_ids", ids);
    report.put("listed_ids", listedIds());
    report.put("page", page(2, 1));
    report.put("renamed", renameOnly(first.getId()));
    report.put("invalid_attendee", failure(() -> create(withInvalidAttendee())));
    report.put("no_token", failure(() -> withDeadline(anonymous).getMeeting(get(first.getId()))));
    return report;
  }

  /** Every call gets its own deadline: a stub's deadline is a point in time, not a span. */
  private static MeetingServiceBlockingStub withDeadline(MeetingServiceBlockingStub stub) {
    return stub.withDeadlineAfter(CALL_SECONDS, TimeUnit.SECONDS);
  }

  private Meeting create(MeetingInput.Builder meeting) {
    return withDeadline(signedIn)
        .createMeeting(CreateMeetingRequest.newBuilder().setMeeting(meeting).build());
  }

  private static MeetingInput.Builder plainMeeting(String name, long start) {
    return MeetingInput.newBuilder().setName(name).setStartDate(start).setEndDate(start + HOUR);
  }

  private static MeetingInput.Builder firstMeeting(int attendeeId) {
    return plainMeeting("Java sync", FIRST_START)
        .addAttendees(Attendee.newBuilder().setId(attendeeId))
        .addAttendees(Attendee.newBuilder().setEmail("guest@example.org"))
        .setNotifyBefore(NotifyBefore.newBuilder().setMetric("hours").setValue(1))
        .setNotify(true);
  }

  private static MeetingInput.Builder withInvalidAttendee() {
    return plainMeeting("Invalid attendee", FIRST_START)
        .addAttendees(Attendee.newBuilder().setEmail("ok@example.com"))
        .addAttendees(Attendee.newBuilder().setEmail("not an address"));
  }

  /** The fields as a Java user reads them: typed getters, and has* for message presence. */
  private static Map<String, Object> typedFields(Meeting meeting) {
    Map<String, Object> fields = new LinkedHashMap<>();
    fields.put("id", meeting.getId());
    fields.put("name", meeting.getName());
    fields.put("host_id", meeting.getHostId());
    fields.put("attendees", attendees(meeting.getAttendeesList()));
    fields.put("notify", meeting.getNotify());
    fields.put("has_notify_before", meeting.hasNotifyBefore());
    fields.put("notify_before_metric", meeting.getNotifyBefore().getMetric());
    fields.put("notify_before_value", meeting.getNotifyBefore().getValue());
    fields.put("has_timezone", meeting.hasTimezone());
    fields.put("chat_dialog_id", meeting.getChatDialogId());
    fields.put("record", meeting.getRecord());
    return fields;
  }

  /** Each attendee with only the keys it has (proto3 `optional`: has* tells them apart). */
  private static List<Map<String, Object>> attendees(List<Attendee> attendees) {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Attendee attendee : attendees) {
      Map<String, Object> keys = new LinkedHashMap<>();
      if (attendee.hasId()) {
        keys.put("id", attendee.getId());
      }
      if (attendee.hasEmail()) {
        keys.put("email", attendee.getEmail());
      }
      out.add(keys);
    }
    return out;
  }

  /** ListMeetings streams: the blocking stub's iterator reads the stream to its end. */
  private List<String> listedIds() {
    List<String> ids = new ArrayList<>();
    withDeadline(signedIn)
        .listMeetings(ListMeetingsRequest.getDefaultInstance())
        .forEachRemaining(meeting -> ids.add(meeting.getId()));
    return ids;
  }

  private Map<String, Object> page(int limit, int offset) {
    MeetingPage page =
        withDeadline(signedIn)
            .listMeetingsPage(
                ListMeetingsPageRequest.newBuilder().setLimit(limit).setOffset(offset).build());
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("total_entries", page.getTotalEntries());
    out.put("limit", page.getLimit());
    out.put("skip", page.getSkip());
    out.put("item_ids", page.getItemsList().stream().map(Meeting::getId).toList());
    return out;
  }

  /** Sends a new name and record=true, but the mask names only `name`: record must stay. */
  private Map<String, Object> renameOnly(String id) {
    UpdateMeetingRequest request =
        UpdateMeetingRequest.newBuilder()
            .setId(id)
            .setMeeting(MeetingInput.newBuilder().setName("renamed").setRecord(true))
            .setUpdateMask(FieldMask.newBuilder().addPaths("name"))
            .build();
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("updated", typedFields(withDeadline(signedIn).updateMeeting(request)));
    out.put("fetched", typedFields(withDeadline(signedIn).getMeeting(get(id))));
    return out;
  }

  private static GetMeetingRequest get(String id) {
    return GetMeetingRequest.newBuilder().setId(id).build();
  }

  /** The status of a call that should fail ("OK" if it did not), with its error details. */
  private static Map<String, Object> failure(Supplier<?> call) {
    Map<String, Object> out = new LinkedHashMap<>();
    try {
      call.get();
      out.put("code", "OK");
    } catch (StatusRuntimeException e) {
      out.put("code", e.getStatus().getCode().name());
      out.put("message", e.getStatus().getDescription());
      out.putAll(details(e));
    }
    return out;
  }

  /**
   * The google.rpc.Status that the server packs into grpc-status-details-bin: BadRequest's
   * violations, the ErrorInfo (null if none), and every detail's type, so that an unexpected one
   * shows in the report.
   */
  private static Map<String, Object> details(StatusRuntimeException e) {
    List<String> types = new ArrayList<>();
    List<Map<String, String>> violations = new ArrayList<>();
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("detail_types", types);
    out.put("violations", violations);
    out.put("error_info", null);
    // null when the trailers carry no details at all.
    com.google.rpc.Status status = io.grpc.protobuf.StatusProto.fromThrowable(e);
    for (Any detail : status == null ? List.<Any>of() : status.getDetailsList()) {
      types.add(detail.getTypeUrl());
      if (detail.is(BadRequest.class)) {
        BadRequest badRequest = unpack(detail, BadRequest.class);
        for (BadRequest.FieldViolation v : badRequest.getFieldViolationsList()) {
          violations.add(Map.of("field", v.getField(), "description", v.getDescription()));
        }
      } else if (detail.is(ErrorInfo.class)) {
        ErrorInfo info = unpack(detail, ErrorInfo.class);
        out.put("error_info", Map.of("reason", info.getReason(), "domain", info.getDomain()));
      }
    }
    return out;
  }

  /** Any.unpack after Any.is: a failure means corrupt details, so it ends the run. */
  private static <T extends com.google.protobuf.Message> T unpack(Any detail, Class<T> type) {
    try {
      return detail.unpack(type);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("undecodable " + detail.getTypeUrl(), e);
    }
  }
}
