-- The hosted Meetings API's REST forms <-> what Envoy's gRPC-JSON transcoder understands.
--
-- Requests (before the transcoder; native gRPC is left alone):
--   * a `.json` suffix is dropped from every path;
--   * a form-urlencoded body on a GET (the JS SDK, the reference's curl) joins the query string;
--   * list filters: `f[op]=v` (brackets possibly %5B/%5D) -> `f.op=v`, plain `f=v` -> `f.eq=v`,
--     `f[in]=a,b` and `f[in][]=a&f[in][]=b` -> repeated `f.in=`; unknown parameters and
--     operators are a 422 naming the parameter, never ignored (so are parameters on the other
--     meeting, session and admin routes, which take none but the admin searches' own);
--   * `GET /meetings?_id=X` (only _id) -> `/meetings/X` (one object); `CB-Api-Version: 2` on
--     GET /meetings -> `/v2/meetings` (the paged shape);
--   * JSON bodies of create (also admin create) and update: unknown top-level keys are a 422
--     (the transcoder would drop them silently), and an update gets `update_mask=` from its
--     top-level keys, so that only the keys sent change (`{"record": true}`) and
--     `{"attendees": []}` clears the list.
-- Responses (REST only):
--   * an error from the server carries `cb-http-status` and `cb-error-body` (set by
--     server/transport/rpc.py): they become the status and the body;
--   * Envoy's own errors (bad JSON, bad parameter values, body too large, upstream down) and
--     any other error become `{"errors": ["..."]}`; a 5xx never shows internal text;
--   * grpc-* headers never reach a REST client (nor trailers, over HTTP/2);
--   * a recording download's `cb-content-length` becomes its Content-Length.
-- A Lua runtime error would let a request through unmodified, so this file is kept small and
-- every branch is exercised by tests/gateway (which also check that the lua.errors stat stays 0).

-- MeetingInput's fields (protos/meetings/v1/meetings.proto; user_id: admin create only); a test
-- keeps this list in sync.
local MEETING_FIELDS = {
  name = true, start_date = true, end_date = true, attendees = true, record = true,
  chat = true, public = true, scheduled = true, notify = true, notify_before = true,
  timezone = true, _id = true, host_id = true, chat_dialog_id = true, created_at = true,
  updated_at = true, user_id = true,
}
-- ListMeetingsRequest: fields that take operators, and those that take a plain value.
local FILTER_FIELDS = { start_date = true, end_date = true, created_at = true, updated_at = true }
-- Where MeetingInput's field is named otherwise than its REST key (its json_name): an update's
-- field mask names the field.
local MASK_PATHS = { _id = "id" }
local PLAIN_PARAMS = { scheduled = true, limit = true, offset = true, _id = true }
local OPERATORS = {
  eq = true, gt = true, gte = true, lt = true, lte = true, ne = true, ["in"] = true, nin = true,
}
local OPERATOR_LIST = "eq, gt, gte, lt, lte, ne, in or nin"
local MEETING_LIST = { filters = {}, plain = PLAIN_PARAMS }
for name in pairs(FILTER_FIELDS) do
  MEETING_LIST.filters[name] = { ops = OPERATORS, list = OPERATOR_LIST }
end
-- GET /users/v2 (ListUsersRequest in protos/meetings/v1/users.proto; a test keeps it in sync).
local ID_OPS = { ops = { eq = true, ["in"] = true, nin = true }, list = "eq, in or nin" }
local TEXT_OPS = {
  ops = { eq = true, ["in"] = true, nin = true, start_with = true },
  list = "eq, in, nin or start_with",
}
local DATE_OPS = { ops = { gt = true, lt = true, gte = true, lte = true }, list = "gt, lt, gte or lte" }
local USER_LIST = {
  filters = {
    id = ID_OPS, login = TEXT_OPS, email = TEXT_OPS, full_name = TEXT_OPS, phone = TEXT_OPS,
    external_id = TEXT_OPS, facebook_id = TEXT_OPS, twitter_id = TEXT_OPS, user_tags = TEXT_OPS,
    created_at = DATE_OPS, updated_at = DATE_OPS, last_request_at = DATE_OPS,
  },
  plain = { limit = true, offset = true, sort_asc = true, sort_desc = true },
}
-- GET /chat/Dialog, /chat/Message, /chat/Message/unread (protos/meetings/v1/chat.proto).
local DIALOG_LIST = {
  filters = { _id = { ops = { eq = true, ["in"] = true }, list = "eq or in" } },
  plain = { limit = true, skip = true },
}
local MESSAGE_LIST = {
  filters = { date_sent = DATE_OPS },
  plain = {
    chat_dialog_id = true, limit = true, skip = true, sort_asc = true, sort_desc = true,
    mark_as_read = true,
  },
}
local UNREAD_LIST = { filters = {}, plain = { chat_dialog_ids = true } }
local LISTS = {
  ["/users/v2"] = USER_LIST, ["/chat/Dialog"] = DIALOG_LIST, ["/chat/Message"] = MESSAGE_LIST,
  ["/chat/Message/unread"] = UNREAD_LIST,
}
-- The query parameters of the admin panel's searches (SearchMeetingsRequest and
-- ListWebhookDeliveriesRequest in protos/meetings/v1/admin.proto; a test keeps these in sync).
local ADMIN_SEARCH_PARAMS = {
  name = true, host = true, start_from = true, start_to = true, limit = true, offset = true,
}
local ADMIN_DELIVERIES_PARAMS = { limit = true, offset = true }
-- An email preview's signed link (RenderEmailPreviewRequest, but the kind in the path).
local ADMIN_PREVIEW_PARAMS = { meeting_id = true, expires = true, signature = true }
-- The body keys of the account routes (CreateSessionRequest, LoginRequest, UserInput in
-- protos/meetings/v1/; a test keeps these in sync): the transcoder would drop others silently.
local SESSION_KEYS = {
  user = true, application_id = true, auth_key = true, nonce = true, timestamp = true,
  signature = true,
}
local SESSION_USER_KEYS = {
  login = true, password = true, guest = true, full_name = true, email = true,
}
local LOGIN_KEYS = { login = true, email = true, password = true }
local USER_INPUT_KEYS = {
  login = true, email = true, password = true, old_password = true, full_name = true,
  phone = true, website = true, custom_data = true, tag_list = true, timezone = true,
  avatar = true, facebook_id = true, twitter_id = true, external_id = true,
  external_user_id = true,
}
local MESSAGE_KEYS = {
  chat_dialog_id = true, message = true, attachments = true, send_to_chat = true,
  markable = true, recipient_id = true,
}
local MESSAGE_UPDATE_KEYS = {
  chat_dialog_id = true, read = true, delivered = true, message = true,
}
-- The admin panel's email tools (UpdateEmailTemplateRequest, PreviewEmailRequest and
-- SendTestEmailRequest, each without the kind of the path).
local EMAIL_TEMPLATE_KEYS = { subject = true, html = true, text = true }
local EMAIL_PREVIEW_KEYS = { meeting_id = true }
local EMAIL_TEST_KEYS = { meeting_id = true, to = true }
local ACCOUNT_BODIES = {
  ["POST /session"] = { top = SESSION_KEYS, user = SESSION_USER_KEYS },
  ["POST /login"] = { top = LOGIN_KEYS },
  ["POST /users"] = { top = { user = true }, user = USER_INPUT_KEYS },
  ["PUT /users/{id}"] = { top = { user = true }, user = USER_INPUT_KEYS },
  ["POST /chat/Message"] = { top = MESSAGE_KEYS },
  ["PUT /chat/Message/{ids}"] = { top = MESSAGE_UPDATE_KEYS },
  ["PUT /admin/email_templates/{kind}"] = { top = EMAIL_TEMPLATE_KEYS },
  ["POST /admin/email_templates/{kind}/preview"] = { top = EMAIL_PREVIEW_KEYS },
  ["POST /admin/email_templates/{kind}/test"] = { top = EMAIL_TEST_KEYS },
}

-- Longest URL accepted (RFC 9110 asks for at least 8000 octets); longer ones get a JSON 414.
-- A GET's form body joins its URL, so it is held to the same.
local MAX_URL = 8192
-- The transcoder's messages name protobuf types; a client is told what kind of value it is.
local PROTO_TYPES = {
  TYPE_DOUBLE = "a number", TYPE_FLOAT = "a number", TYPE_INT32 = "a whole number",
  TYPE_INT64 = "a whole number", TYPE_UINT32 = "a whole number", TYPE_UINT64 = "a whole number",
  TYPE_SINT32 = "a whole number", TYPE_SINT64 = "a whole number", TYPE_FIXED32 = "a whole number",
  TYPE_FIXED64 = "a whole number", TYPE_BOOL = "true or false", TYPE_STRING = "text",
  TYPE_BYTES = "text", TYPE_ENUM = "a known value", TYPE_MESSAGE = "an object",
}

local GENERIC_5XX = {
  [503] = "The service is temporarily unavailable, try again",
  [504] = "The request timed out, try again",
}

-- JSON ------------------------------------------------------------------------------------

-- The byte sequence of a valid UTF-8 character starting at i, or nil. Strict, as JSON parsers
-- are: no overlong forms, no surrogates, nothing above U+10FFFF.
local function utf8_char(s, i)
  local c = s:byte(i)
  if c < 0x80 then return s:sub(i, i) end
  local len, low, high = 0, 0x80, 0xBF
  if c >= 0xC2 and c <= 0xDF then len = 2
  elseif c == 0xE0 then len, low = 3, 0xA0
  elseif c == 0xED then len, high = 3, 0x9F
  elseif c >= 0xE1 and c <= 0xEF then len = 3
  elseif c == 0xF0 then len, low = 4, 0x90
  elseif c == 0xF4 then len, high = 4, 0x8F
  elseif c >= 0xF1 and c <= 0xF3 then len = 4
  else return nil end
  for k = 1, len - 1 do
    local b = s:byte(i + k)
    if b == nil or b < (k == 1 and low or 0x80) or b > (k == 1 and high or 0xBF) then
      return nil
    end
  end
  return s:sub(i, i + len - 1)
end

-- `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD: error messages can
-- echo what a client sent, and the JSON we build from them must stay valid.
local function valid_utf8(s)
  if not s:find("[\128-\255]") then return s end
  local out, i = {}, 1
  while i <= #s do
    local char = utf8_char(s, i)
    out[#out + 1] = char or "\239\191\189"
    i = i + (char and #char or 1)
  end
  return table.concat(out)
end

local function is_utf8(s)
  return valid_utf8(s) == s
end

local function json_string(s)
  return '"' .. valid_utf8(s):gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- {"errors": {"<field>": ["<message>"], ...}} from a list of {field, message} pairs.
local function field_errors(problems)
  local parts = {}
  for _, p in ipairs(problems) do
    parts[#parts + 1] = json_string(p[1]) .. ":[" .. json_string(p[2]) .. "]"
  end
  return '{"errors":{' .. table.concat(parts, ",") .. "}}"
end

local function message_errors(message)
  return '{"errors":[' .. json_string(message) .. "]}"
end

-- The keys of a JSON object's top level, in order, and for each top-level key whose value
-- is an object, that object's keys; nil if `text` is not a complete object (malformed JSON
-- is then left to the transcoder, which reports where it is wrong).
local function object_keys(text)
  local i = text:find("%S")
  if not i or text:byte(i) ~= 123 then -- "{"
    return nil
  end
  local keys, nested, open, n = {}, {}, {}, #text
  local last_top
  while true do
    i = text:find('["{}%[%]]', i)
    if not i then
      return nil
    end
    local c = text:byte(i)
    if c == 34 then -- a string: find its closing quote, skipping escapes
      local j = i + 1
      while true do
        j = text:find('["\\]', j)
        if not j then
          return nil
        end
        if text:byte(j) == 92 then
          j = j + 2
        else
          break
        end
      end
      if open[#open] == 123 and text:find("^%s*:", j + 1) then
        local key = text:sub(i + 1, j - 1)
        if #open == 1 then
          keys[#keys + 1], last_top = key, key
        elseif #open == 2 and nested[last_top] then
          table.insert(nested[last_top], key)
        end
      end
      i = j + 1
    else
      if c == 123 or c == 91 then
        open[#open + 1] = c
        if c == 123 and #open == 2 and last_top then
          nested[last_top] = nested[last_top] or {}
        end
      else
        open[#open] = nil
      end
      i = i + 1
      if #open == 0 then
        return (text:find("^%s*$", i)) and keys or nil, nested
      end
    end
  end
end

-- Query strings -----------------------------------------------------------------------------

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function parse_pairs(query, out)
  for part in query:gmatch("[^&]+") do
    local key, value = part:match("^([^=]*)=?(.*)$")
    if key ~= "" then
      out[#out + 1] = { percent_decode(key), value }
    end
  end
  return out
end

local function build_query(params)
  local parts = {}
  for _, p in ipairs(params) do
    parts[#parts + 1] = p[1] .. "=" .. p[2]
  end
  return table.concat(parts, "&")
end

-- `start_date[in][]` -> "start_date", {"in", ""}; `start_date.gte` -> "start_date", {"gte"}.
local function split_key(key)
  local name, rest = key:match("^([^%[]*)(.*)$")
  local groups = {}
  local dotted_name, dotted_op = name:match("^([^.]+)%.(.+)$")
  if dotted_name then
    name = dotted_name
    groups[1] = dotted_op
  end
  for group in rest:gmatch("%[([^%]]*)%]") do
    groups[#groups + 1] = group
  end
  local well_formed = rest:gsub("%[[^%]]*%]", "") == ""
  return name, groups, well_formed
end

-- A list request's parameters in the transcoder's form (`spec`: its filters, each with its
-- operators, and its plain parameters), or nil and the problems.
local function list_params(params, spec)
  local out, problems = {}, {}
  for _, p in ipairs(params) do
    local key, value = p[1], p[2]
    local name, groups, well_formed = split_key(key)
    local op = groups[1] or "eq"
    local filter = spec.filters[name]
    if not well_formed then
      problems[#problems + 1] = { key, "is not a well-formed parameter name" }
    elseif filter then
      local list = op == "in" or op == "nin"
      if not filter.ops[op] or #groups > 2 or (#groups == 2 and (not list or groups[2] ~= "")) then
        problems[#problems + 1] = { key, "unsupported operator: use " .. filter.list }
      elseif list then
        for item in value:gsub("%%2[Cc]", ","):gmatch("[^,]+") do
          out[#out + 1] = { name .. "." .. op, item }
        end
      else
        out[#out + 1] = { name .. "." .. op, value }
      end
    elseif spec.plain[name] and #groups == 0 then
      out[#out + 1] = { name, value }
    elseif spec.plain[name] then
      problems[#problems + 1] = { key, "takes no operator: use " .. name .. "=value" }
    else
      problems[#problems + 1] = { key, "is not a supported parameter" }
    end
  end
  if #problems > 0 then
    return nil, problems
  end
  return out
end

local function unknown_params(params, allowed)
  local problems = {}
  for _, p in ipairs(params) do
    if not allowed[p[1]] then
      problems[#problems + 1] = { p[1], "is not a supported parameter" }
    end
  end
  return problems
end

-- A path segment: unreserved characters and existing %XX escapes are kept, the rest escaped.
local function path_segment(value)
  return (value:gsub("[^%w%-%._~%%]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function snake_case(key)
  return (key:gsub("(%l)(%u)", function(a, b) return a .. "_" .. b:lower() end))
end

-- Requests ----------------------------------------------------------------------------------

local function reject(handle, status, body)
  handle:respond({ [":status"] = tostring(status), ["content-type"] = "application/json" }, body)
end

-- The body's top-level keys (snake_case) if it is a JSON object; a 422 for unknown ones.
local function meeting_keys(handle, body)
  if not body or body:length() == 0 then
    return nil
  end
  local keys = object_keys(body:getBytes(0, body:length()))
  if not keys then
    return nil
  end
  local names, seen, problems = {}, {}, {}
  for _, key in ipairs(keys) do
    local name = snake_case(key)
    if not MEETING_FIELDS[name] then
      problems[#problems + 1] = { key, "is not a meeting field" }
    elseif not seen[name] then
      seen[name] = true
      names[#names + 1] = MASK_PATHS[name] or name
    end
  end
  if #problems > 0 then
    reject(handle, 422, field_errors(problems))
    return nil, true
  end
  return names
end

-- The account route's body keys that it does not take, as {key, message} problems.
local function account_problems(body, spec)
  if not body or body:length() == 0 then
    return {}
  end
  local keys, nested = object_keys(body:getBytes(0, body:length()))
  local problems = {}
  for _, key in ipairs(keys or {}) do
    if not spec.top[snake_case(key)] then
      problems[#problems + 1] = { key, "is not a supported field" }
    end
  end
  for _, key in ipairs((spec.user and nested and nested.user) or {}) do
    if not spec.user[snake_case(key)] then
      problems[#problems + 1] = { "user[" .. key .. "]", "is not a supported field" }
    end
  end
  return problems
end

-- The first parameter (or the path) that is not valid UTF-8 once decoded, or nil.
local function not_utf8(path, params)
  if not is_utf8(percent_decode(path)) then
    return "the path"
  end
  for _, p in ipairs(params) do
    if not is_utf8(p[1]) or not is_utf8(percent_decode(p[2])) then
      return valid_utf8(p[1]) -- named with U+FFFD where its bytes are not UTF-8
    end
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local original = headers:get(":path")
  -- A trace's http.url is this path without its query (signed links, search terms, emails
  -- live there): envoy.yaml's tracing (supervisor.tracing_values) reads it from here.
  handle:streamInfo():dynamicMetadata():set("meetings.trace", "path", (original:match("^[^?]*")))
  local content_type = headers:get("content-type") or ""
  if content_type:find("^application/grpc") then
    if content_type:find("^application/grpc%-web") then
      if original:find("^/meetings%.v1%.%w+/%w+$") then
        return -- gRPC-Web to one of our methods: the next filter makes it gRPC
      end
    elseif original:find("^/[%w_]+%.[%w_.]+/[%w_]+$") then
      return -- native gRPC (/package.Service/Method)
    end
    -- Envoy answers a request that says it is gRPC in gRPC's framing: it is a REST call now.
    headers:replace("content-type", "application/json")
    return reject(handle, 415, message_errors("gRPC content types are for gRPC methods; "
      .. "REST calls send application/json or a form"))
  end
  if #original > MAX_URL then
    return reject(handle, 414, message_errors("The URL is too long"))
  end
  local method = headers:get(":method")
  local path, query = original:match("^([^?]*)%??(.*)$")
  path = path:gsub("%.json$", "")
  local params = parse_pairs(query, {})
  if method == "HEAD" and path:find("^/recordings/[^/]+/download$") then
    -- A download's headers without its body (Envoy sends no body in reply to a HEAD).
    headers:replace(":method", "GET")
    method = "GET"
  end
  local is_list = method == "GET" and (path == "/meetings" or path == "/v2/meetings")
  local other_list = method == "GET" and LISTS[path]
  local one_meeting = path:match("^/meetings/([^/]+)$")
  local creating = method == "POST" and (path == "/meetings" or path == "/admin/meetings")
  local updating = method == "PUT" and one_meeting ~= nil
  local route = path:find("^/users/%d+$") and "/users/{id}"
    or path:find("^/chat/Message/[^/]+$") and "/chat/Message/{ids}"
    or path:gsub("^/admin/email_templates/[^/]+", "/admin/email_templates/{kind}", 1)
  local account = ACCOUNT_BODIES[method .. " " .. route]

  if method == "GET" or creating or updating or account then
    local body = handle:body()
    headers = handle:headers() -- the earlier object is not valid after body()
    local content_type = headers:get("content-type") or ""
    if method == "GET" and body and body:length() > MAX_URL then
      return reject(handle, 413, message_errors("The request body is too large"))
    elseif method == "GET" and body and body:length() > 0 and not content_type:find("json") then
      -- A form-urlencoded body on a GET: its parameters join the query string.
      parse_pairs(body:getBytes(0, body:length()), params)
      body:setBytes("")
      headers:replace("content-length", "0")
      headers:remove("content-type")
    elseif account then
      local problems = account_problems(body, account)
      if #problems > 0 then
        return reject(handle, 422, field_errors(problems))
      end
    elseif creating or updating then
      local names, rejected = meeting_keys(handle, body)
      if rejected then
        return
      end
      if updating and names and #names > 0 and #params == 0 then
        params[1] = { "update_mask", table.concat(names, ",") }
      end
    end
  end

  local bad = not_utf8(path, params)
  if bad then
    return reject(handle, 400, message_errors(bad .. " is not valid UTF-8"))
  end

  local problems
  if is_list then
    if path == "/meetings" and (headers:get("cb-api-version") or "") == "2" then
      path = "/v2/meetings"
    elseif path == "/meetings" and #params == 1 and params[1][1] == "_id" then
      path = "/meetings/" .. path_segment(params[1][2])
      params = {}
    end
    params, problems = list_params(params, MEETING_LIST)
  elseif other_list then
    params, problems = list_params(params, other_list)
  elseif path == "/meetings" or path == "/session" or one_meeting or path:find("^/admin/") then
    local allowed = {}
    if updating then
      allowed = { update_mask = true }
    elseif method == "GET" and path == "/admin/meetings" then
      allowed = ADMIN_SEARCH_PARAMS
    elseif method == "GET" and path == "/admin/webhooks/deliveries" then
      allowed = ADMIN_DELIVERIES_PARAMS
    elseif method == "GET" and path:find("^/admin/email_preview/[^/]+$") then
      allowed = ADMIN_PREVIEW_PARAMS
    end
    problems = unknown_params(params, allowed)
  end
  if problems and #problems > 0 then
    return reject(handle, 422, field_errors(problems))
  end

  local rewritten = path
  if #params > 0 then
    rewritten = path .. "?" .. build_query(params)
  end
  if rewritten ~= original then
    headers:replace(":path", rewritten)
    handle:clearRouteCache()
  end
end

-- Responses ---------------------------------------------------------------------------------

local INTERNAL_HEADERS = {
  ["cb-http-status"] = true, ["cb-error-body"] = true, ["cb-content-length"] = true,
}

-- Drops grpc-* and the server's internal headers (headers cannot change while iterated).
local function remove_internal(headers)
  local drop = {}
  for name, _ in pairs(headers) do
    if name:find("^grpc%-") or INTERNAL_HEADERS[name] then
      drop[#drop + 1] = name
    end
  end
  for _, name in ipairs(drop) do
    headers:remove(name)
  end
end

-- The same for the trailers of a streamed reply (over HTTP/2 they would carry grpc-status).
local function remove_internal_trailers(handle)
  local trailers = handle:trailers()
  if trailers then
    remove_internal(trailers)
  end
end

-- A transcoder message without the names of our protobuf types and packages.
local function public_message(text)
  text = text:gsub("TYPE_%u+%d*", function(name) return PROTO_TYPES[name] or "a value" end)
  text = text:gsub("type%.googleapis%.com/[%w_.]+", "the request")
  text = text:gsub("google%.protobuf%.[%w_.]+", "a value")
  text = text:gsub("meetings%.v1%.[%w_.]+", "the request")
  return text
end

-- A meeting's chat_dialog_id, notify_before and timezone print as null when it has none, as the
-- hosted API prints them. protos/ types them (meetings.proto): an empty string, or an unset
-- message, which the transcoder omits. Unset ones are Meeting's last fields (14 and 15), after
-- `notify` (13), which is always printed: the nulls go back where they belong. No pattern can
-- match inside a JSON string, where every quote is escaped.
local function meeting_nulls(text)
  text = text:gsub('"chat_dialog_id":""', '"chat_dialog_id":null')
  text = text:gsub('("notify_before":%b{})}', '%1,"timezone":null}')
  text = text:gsub('("notify":%a+)}', '%1,"notify_before":null,"timezone":null}')
  text = text:gsub('("notify":%a+),"timezone"', '%1,"notify_before":null,"timezone"')
  return text
end

-- The REST routes whose replies hold meetings (the original path, as envoy_on_request saw it).
local function prints_meetings(handle)
  local trace = handle:streamInfo():dynamicMetadata():get("meetings.trace")
  local path = trace and trace.path or ""
  return path:find("^/meetings") or path:find("^/v2/meetings") or path:find("^/admin/meetings")
end

-- A JSON reply holding meetings, with their nulls (buffered, streamed or not).
local function print_meeting_nulls(handle, streamed)
  local body = handle:body()
  local text = meeting_nulls(body:getBytes(0, body:length()))
  body:setBytes(text)
  local headers = handle:headers() -- the earlier object is not valid after body()
  if not streamed then
    headers:replace("content-length", tostring(#text))
  end
  remove_internal_trailers(handle)
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:find("^application/grpc") then
    return -- native gRPC
  end
  local status = tonumber(headers:get(":status")) or 500
  local http_status = tonumber(headers:get("cb-http-status") or "")
  local error_body = headers:get("cb-error-body")
  local streamed = headers:get("content-length") == nil
  local file_size = headers:get("cb-content-length")
  remove_internal(headers)
  if status < 400 and not http_status then
    if file_size then -- a recording download: its size is known before it streams
      headers:replace("content-length", file_size)
    end
    if content_type:find("^application/json") and prints_meetings(handle) then
      print_meeting_nulls(handle, streamed)
    elseif streamed then
      -- A streamed reply (a list, a file): the chunks pass through unbuffered.
      for _ in handle:bodyChunks() do
      end
      remove_internal_trailers(handle)
    end
    return
  end

  local body = handle:body(true)
  local text = body:getBytes(0, body:length())
  local replacement
  if http_status and error_body then
    status, replacement = http_status, error_body
  elseif text:find('^{"errors":') then
    return -- already in the API's shape: a rejection by envoy_on_request
  elseif status >= 500 then
    replacement = message_errors(GENERIC_5XX[status] or "Internal error")
  elseif status == 413 then
    replacement = message_errors("The request body is too large")
  elseif status == 404 then -- the transcoder: no RPC for this method and path
    replacement = message_errors("The resource wasn't found")
  else
    -- Envoy's own 4xx (the transcoder's, for bad JSON or parameter values) say what is wrong.
    local plain = content_type:find("^text/plain") and text:match("^%s*(.-)%s*$") or ""
    replacement = message_errors(plain ~= "" and public_message(plain) or "Bad request")
  end
  body:setBytes(replacement)
  headers = handle:headers()
  headers:replace(":status", tostring(status))
  headers:replace("content-type", "application/json")
  headers:replace("content-length", tostring(#replacement))
end
