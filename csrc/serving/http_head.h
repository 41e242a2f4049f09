// A strict reader of one HTTP/1.1 request head, for the server's fast inference path. It accepts
// only the plain form clients like perf_analyzer and tritonclient send (POST, an origin-form
// path, HTTP/1.1, Content-Length); anything else, malformed or merely unusual, answers
// kUnsupported so the caller hands the bytes to the full HTTP parser, which then answers exactly
// as it always has.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace runnx {

struct HttpHead {
  std::string_view path;                 // the request target, always starting with '/'
  size_t head_bytes = 0;                 // through the blank line ending the head
  int64_t content_length = -1;
  int64_t inference_header_length = -1;  // Inference-Header-Content-Length; -1 absent
  std::string_view authorization;        // empty when absent
  bool has_authorization = false;
};

enum class HeadParse { kOk, kIncomplete, kUnsupported };

// Parses the head at the start of `data`. kOk fills `head`; kIncomplete: no blank line yet
// (and nothing unsupported so far); kUnsupported: leave this request to the full parser.
HeadParse parse_http_head(std::string_view data, HttpHead& head);

}  // namespace runnx
