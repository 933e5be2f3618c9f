// The meeting's chat, live: a user signed in with the SDK watches the dialog over gRPC-Web
// (ChatService.WatchDialog through Envoy, with the SDK session's token as cb-token) while
// another user writes with the SDK. Resuming after the last message read in the history means
// nothing is missed between reading the history and the watch starting.
import { chatClient } from '../gen/grpc-web.js';
import { attempt, init } from './common.js';

const WAIT_MS = 10_000;

async function signIn(CB, args) {
  init(CB, args);
  return attempt(() => CB.createSession({ login: args.login, password: args.password }));
}

function eventOf(event) {
  if (event.event.case !== 'message') return { keepalive: true };
  const m = event.event.value;
  return { id: m.id, message: m.message, senderId: m.senderId, dialogId: m.chatDialogId };
}

// A watch read in the background: its events, and how it ended ({code, message} for an error).
function watch(client, request, token) {
  const controller = new AbortController();
  const state = { events: [], ended: null };
  const options = { headers: { 'cb-token': token }, signal: controller.signal };
  state.done = (async () => {
    try {
      for await (const event of client.watchDialog(request, options)) state.events.push(eventOf(event));
      state.ended = { code: 0 };
    } catch (error) {
      state.ended = { code: error.code ?? null, message: error.rawMessage ?? String(error) };
    }
  })();
  state.stop = async () => {
    controller.abort();
    await state.done;
  };
  return state;
}

async function until(condition) {
  const deadline = Date.now() + WAIT_MS;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  return condition();
}

// The host reads the history, watches after its last message, and lets the test have the
// attendee write (step "watching"); returns what the watch received.
async function chatHostWatches(CB, args, step) {
  const { dialogId } = args;
  const r = { session: await signIn(CB, args) };
  r.history = await attempt(() => CB.chat.message.list({ chat_dialog_id: dialogId, sort_asc: 'date_sent' }));
  const items = (r.history.value && r.history.value.items) || [];
  const client = chatClient(args.base);
  const token = r.session.value && r.session.value.token;
  const request = { chatDialogId: dialogId, afterMessageId: items.length ? items.at(-1)._id : undefined };
  const live = watch(client, request, token);
  r.sent = await step('watching', null);
  r.received = await until(() => live.events.filter((e) => !e.keepalive).length >= args.expect);
  await live.stop();
  r.events = live.events.filter((e) => !e.keepalive);
  r.ended = live.ended;
  // Refusals through the gateway: no session token, and one that is not an occupant's.
  r.noToken = await watchEnd(client, { chatDialogId: dialogId }, 'not-a-token');
  r.stranger = await watchEnd(client, { chatDialogId: dialogId }, args.strangerToken);
  r.unknownResume = await watchEnd(client, { chatDialogId: dialogId, afterMessageId: 'f'.repeat(24) }, token);
  return r;
}

async function watchEnd(client, request, token) {
  const refused = watch(client, request, token);
  await until(() => refused.ended !== null);
  await refused.stop();
  return { ended: refused.ended, events: refused.events.length };
}

// The attendee writes to the dialog with the SDK (while the host watches).
async function chatAttendeeSends(CB, args) {
  const r = { session: await signIn(CB, args) };
  r.sent = [];
  for (const text of args.texts) {
    r.sent.push(await attempt(() => CB.chat.message.create({ chat_dialog_id: args.dialogId, message: text })));
  }
  return r;
}

export default { chatHostWatches, chatAttendeeSends };
