// Phase 1: a host's meetings and a guest, as they work with the stock SDK.
import { attempt, init } from './common.js';

const MEETING = {
  name: 'Friday weekly sync',
  start_date: 1893456000, // 2030-01-01: in the future, so nothing about it has passed
  end_date: 1893459600,
  record: false,
  chat: true,
  public: false,
  scheduled: true,
  notify: false,
  notify_before: { metric: 'minutes', value: 10 },
  timezone: { offset: 120, name: 'Europe/Riga' },
};

// A host's whole meeting life cycle, then sign-out: the old token must be refused.
async function meetings(CB, args, step) {
  init(CB, args);
  const r = {};
  r.session = await attempt(() => CB.createSession({ login: args.login, password: args.password }));
  r.created = await attempt(() =>
    CB.meeting.create({
      ...MEETING,
      attendees: [{ id: args.attendeeId }, { email: args.attendeeEmail }],
    })
  );
  const id = r.created.value && r.created.value._id;
  await step('created', { id });
  r.one = await attempt(() => CB.meeting.get({ _id: id }));
  r.listed = await attempt(() => CB.meeting.get({}));
  r.filtered = await attempt(() =>
    CB.meeting.get({ start_date: { gte: MEETING.start_date }, scheduled: true })
  );
  r.filteredOut = await attempt(() => CB.meeting.get({ start_date: { gt: MEETING.start_date } }));
  r.updated = await attempt(() =>
    CB.meeting.update(id, { name: 'Renamed sync', record: true, attendees: [{ id: args.attendeeId }] })
  );
  r.recordings = await attempt(() => CB.meeting.getRecordings(id));
  r.deleted = await attempt(() => CB.meeting.delete(id));
  r.afterDelete = await attempt(() => CB.meeting.get({ _id: id }));
  const token = r.session.value && r.session.value.token;
  r.destroyed = await attempt(() => CB.destroySession());
  // The SDK forgets its session on sign-out; an app holding the old token keeps sending it.
  r.noSession = await attempt(() => CB.meeting.get({}));
  CB.setSession({ token });
  r.oldToken = await attempt(() => CB.meeting.get({}));
  return r;
}

// A guest joining by link: a session with a name only, then the public meeting it was sent.
async function guest(CB, args) {
  init(CB, args);
  const r = {};
  r.session = await attempt(() => CB.createSession({ guest: '1', full_name: args.fullName }));
  r.meeting = await attempt(() => CB.meeting.get({ _id: args.meetingId }));
  r.listed = await attempt(() => CB.meeting.get({}));
  return r;
}

export default { meetings, guest };
