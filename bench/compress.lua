-- bench/compress.lua: wrk script for the compression benchmark (bench/compress.ts).
-- POST /query_script for drafts dft_000001 .. dft_000100 in turn (5-11 KB of JSON each), accepting gzip.
local n = 0
local headers = { ["Content-Type"] = "application/json", ["Accept-Encoding"] = "gzip" }

request = function()
  n = n % 100 + 1
  local body = string.format('{"draft_id":"dft_%06d","force_update":false}', n)
  return wrk.format("POST", "/query_script", headers, body)
end
