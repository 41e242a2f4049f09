#include "serving/http_head.h"

namespace runnx {

namespace {

constexpr size_t kMaxHeadBytes = 64 << 10;  // the full parser's limit on headers

bool is_token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(a[i]);
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c | 0x20);
    if (c != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

// A decimal of at most 15 digits (no sign, no spaces), else -1.
int64_t parse_count(std::string_view v) {
  if (v.empty() || v.size() > 15) return -1;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

HeadParse parse_http_head(std::string_view data, HttpHead& head) {
  head = HttpHead{};
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos)
    return data.size() > kMaxHeadBytes ? HeadParse::kUnsupported : HeadParse::kIncomplete;
  if (end + 4 > kMaxHeadBytes) return HeadParse::kUnsupported;
  head.head_bytes = end + 4;
  const std::string_view text = data.substr(0, end + 2);  // every line ends with CRLF

  // Request line: exactly "POST <path> HTTP/1.1"; the path plain (no query, fragment, escapes).
  size_t eol = text.find("\r\n");
  std::string_view line = text.substr(0, eol);
  constexpr std::string_view kMethod = "POST ", kVersion = " HTTP/1.1";
  if (line.size() <= kMethod.size() + kVersion.size() || line.substr(0, kMethod.size()) != kMethod ||
      line.substr(line.size() - kVersion.size()) != kVersion)
    return HeadParse::kUnsupported;
  head.path = line.substr(kMethod.size(), line.size() - kMethod.size() - kVersion.size());
  if (head.path[0] != '/') return HeadParse::kUnsupported;
  for (char ch : head.path) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%') return HeadParse::kUnsupported;
  }

  size_t pos = eol + 2;
  while (pos < text.size()) {
    eol = text.find("\r\n", pos);
    line = text.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return HeadParse::kUnsupported;
    const std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!is_token_char(static_cast<unsigned char>(c))) return HeadParse::kUnsupported;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    for (char ch : value) {  // visible ASCII, spaces and tabs; no bare CR or LF, no obs-text
      const unsigned char c = static_cast<unsigned char>(ch);
      if ((c < 0x20 && c != '\t') || c >= 0x7f) return HeadParse::kUnsupported;
    }
    const bool trailing_space = !value.empty() && (value.back() == ' ' || value.back() == '\t');
    if (iequals(name, "content-length")) {
      if (head.content_length >= 0) return HeadParse::kUnsupported;
      head.content_length = parse_count(value);
      if (head.content_length < 0) return HeadParse::kUnsupported;
    } else if (iequals(name, "inference-header-content-length")) {
      if (head.inference_header_length >= 0) return HeadParse::kUnsupported;
      head.inference_header_length = parse_count(value);
      if (head.inference_header_length < 0) return HeadParse::kUnsupported;
    } else if (iequals(name, "authorization")) {
      if (head.has_authorization || trailing_space) return HeadParse::kUnsupported;
      head.has_authorization = true;
      head.authorization = value;
    } else if (iequals(name, "connection")) {
      if (!iequals(value, "keep-alive")) return HeadParse::kUnsupported;
    } else if (iequals(name, "transfer-encoding") || iequals(name, "content-encoding") ||
               iequals(name, "expect") || iequals(name, "upgrade") || iequals(name, "x-request-id")) {
      return HeadParse::kUnsupported;  // bodies, answers or framing the full path deals with
    }
  }
  if (head.content_length < 0) return HeadParse::kUnsupported;
  return HeadParse::kOk;
}

}  // namespace runnx
