// Phase 3: the meeting's chat dialog over REST (CB.chat.dialog.*, CB.chat.message.*), one SDK
// session per run: the test runs the host's and the attendee's turns one after another, each
// signed in afresh, and hands each run the ids the previous ones made.
import { attempt, init } from './common.js';

const MEETING = {
  name: 'Chat sync',
  start_date: 1893456000, // 2030-01-01
  end_date: 1893459600,
  chat: true,
  public: false,
};

async function signIn(CB, args) {
  init(CB, args);
  return attempt(() => CB.createSession({ login: args.login, password: args.password }));
}

const unread = (CB, dialogId) => attempt(() => CB.chat.message.unreadCount({ chat_dialog_ids: [dialogId] }));

// The host schedules a meeting with chat and one attendee by id, then finds its dialog.
async function chatHostCreates(CB, args) {
  const r = { session: await signIn(CB, args) };
  r.created = await attempt(() => CB.meeting.create({ ...MEETING, attendees: [{ id: args.attendeeId }] }));
  const dialogId = r.created.value && r.created.value.chat_dialog_id;
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  r.all = await attempt(() => CB.chat.dialog.list());
  return r;
}

// The attendee finds the dialog, subscribes (already an occupant), writes twice, and sends
// what the API refuses: an empty message, an unknown custom key.
async function chatAttendeeWrites(CB, args) {
  const dialogId = args.dialogId;
  const r = { session: await signIn(CB, args) };
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  r.all = await attempt(() => CB.chat.dialog.list());
  r.subscribed = await attempt(() => CB.chat.dialog.subscribe(dialogId));
  r.empty = await attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId, sort_asc: 'date_sent' }));
  r.hi = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'hi' }));
  r.second = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'second' }));
  r.blank = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: '' }));
  r.custom = await attempt(() =>
    CB.chat.message.create({ chat_dialog_id: dialogId, message: 'from', country: 'USA' })
  );
  r.unread = await unread(CB, dialogId);
  return r;
}

// The host reads the history (the test has set the two messages' date_sent around
// args.pivot, 'second' before 'hi'), pages and filters it, deletes the attendee's second
// message, and replies.
async function chatHostReads(CB, args) {
  const dialogId = args.dialogId;
  const list = (params) => attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId, ...params }));
  const r = { session: await signIn(CB, args) };
  r.unreadBefore = await unread(CB, dialogId);
  r.history = await list({ sort_asc: 'date_sent' });
  r.unreadAfter = await unread(CB, dialogId);
  r.defaultOrder = await list({});
  r.page = await list({ sort_asc: 'date_sent', limit: 1, skip: 1 });
  r.older = await list({ sort_asc: 'date_sent', date_sent: { lt: args.pivot } });
  r.newer = await list({ sort_asc: 'date_sent', date_sent: { gt: args.pivot } });
  r.deleted = await attempt(() => CB.chat.message.delete(args.secondId));
  r.reply = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'hello' }));
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  return r;
}

// The attendee has one unread reply: looks without marking, marks it read, edits its own
// message (not the host's), then deletes the host's, its own and an unknown one at once.
async function chatAttendeeReads(CB, args) {
  const { dialogId, hiId, replyId } = args;
  const list = (params) => attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId, ...params }));
  const r = { session: await signIn(CB, args) };
  r.unread = await unread(CB, dialogId);
  r.peek = await list({ sort_asc: 'date_sent', mark_as_read: 0 });
  r.unreadAfterPeek = await unread(CB, dialogId);
  r.markRead = await attempt(() => CB.chat.message.update(replyId, { chat_dialog_id: dialogId, read: 1 }));
  r.unreadAfterRead = await unread(CB, dialogId);
  r.edited = await attempt(() => CB.chat.message.update(hiId, { chat_dialog_id: dialogId, message: 'edited' }));
  r.editOthers = await attempt(() =>
    CB.chat.message.update(replyId, { chat_dialog_id: dialogId, message: 'hacked' })
  );
  r.afterEdit = await list({ sort_asc: 'date_sent', mark_as_read: 0 });
  r.deleted = await attempt(() => CB.chat.message.delete([replyId, hiId, args.unknownId]));
  r.remaining = await list({ sort_asc: 'date_sent' });
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  return r;
}

// Someone signed in who is no occupant of a non-public meeting's dialog.
async function chatStranger(CB, args) {
  const { dialogId, messageId } = args;
  const r = { session: await signIn(CB, args) };
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  r.all = await attempt(() => CB.chat.dialog.list());
  r.subscribe = await attempt(() => CB.chat.dialog.subscribe(dialogId));
  r.create = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'let me in' }));
  r.history = await attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId }));
  r.edit = await attempt(() => CB.chat.message.update(messageId, { chat_dialog_id: dialogId, message: 'mine' }));
  r.deleted = await attempt(() => CB.chat.message.delete([messageId]));
  return r;
}

// A guest joining by link: not an occupant of the public meeting's dialog until it
// subscribes, then it reads and writes; a non-public meeting's dialog stays closed.
async function chatGuest(CB, args) {
  const { dialogId, privateDialogId } = args;
  init(CB, args);
  const r = {};
  r.session = await attempt(() => CB.createSession({ guest: '1', full_name: args.fullName }));
  r.before = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  r.createBefore = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'early' }));
  r.subscribed = await attempt(() => CB.chat.dialog.subscribe(dialogId));
  r.dialog = await attempt(() => CB.chat.dialog.list({ _id: dialogId }));
  r.all = await attempt(() => CB.chat.dialog.list());
  r.sent = await attempt(() => CB.chat.message.create({ chat_dialog_id: dialogId, message: 'hello from a guest' }));
  r.history = await attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId, sort_asc: 'date_sent' }));
  r.privateSubscribe = await attempt(() => CB.chat.dialog.subscribe(privateDialogId));
  r.privateCreate = await attempt(() =>
    CB.chat.message.create({ chat_dialog_id: privateDialogId, message: 'and here?' })
  );
  return r;
}

export default { chatHostCreates, chatAttendeeWrites, chatHostReads, chatAttendeeReads, chatStranger, chatGuest };
