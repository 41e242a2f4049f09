#include "serving/fast_infer.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "serving/http_head.h"

namespace runnx {

namespace {

using Clock = std::chrono::steady_clock;

// KServe datatype of an output, or nullptr for types the fast path does not answer.
const char* kserve_datatype(DType t) {
  switch (t) {
    case DType::kBool: return "BOOL";
    case DType::kU8: return "UINT8";
    case DType::kU16: return "UINT16";
    case DType::kU32: return "UINT32";
    case DType::kU64: return "UINT64";
    case DType::kI8: return "INT8";
    case DType::kI16: return "INT16";
    case DType::kI32: return "INT32";
    case DType::kI64: return "INT64";
    case DType::kF16: return "FP16";
    case DType::kF32: return "FP32";
    case DType::kF64: return "FP64";
    default: return nullptr;
  }
}

// Constant-time equality (the bearer token).
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

size_t decimal_len(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

char* put(char* out, std::string_view s) {
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

char* put_decimal(char* out, int64_t v) {
  if (v < 0) {
    *out++ = '-';
    v = -v;
  }
  const size_t n = decimal_len(static_cast<uint64_t>(v));
  for (size_t i = n; i-- > 0; v /= 10) out[i] = static_cast<char>('0' + v % 10);
  return out + n;
}

size_t hex_len(uint64_t v) {
  size_t n = 1;
  while (v >= 16) {
    v >>= 4;
    ++n;
  }
  return n;
}

char* put_hex(char* out, uint64_t v) {
  const size_t n = hex_len(v);
  for (size_t i = n; i-- > 0; v >>= 4) out[i] = "0123456789abcdef"[v & 15];
  return out + n;
}

constexpr std::string_view kStatusLine = "HTTP/1.1 200 OK\r\n";
constexpr std::string_view kLength = "content-length: ";
constexpr std::string_view kRequestId = "\r\nx-request-id: ";
constexpr std::string_view kTypeAndHeader =
    "\r\ncontent-type: application/octet-stream\r\ninference-header-content-length: ";
constexpr std::string_view kShape = "\",\"shape\":[";
constexpr std::string_view kSize = "],\"parameters\":{\"binary_data_size\":";

}  // namespace

// ---- stats ------------------------------------------------------------------------------------

FastStats::FastStats(std::vector<double> latency_bounds, std::vector<double> batch_bounds) {
  for (Histogram* h : {&queue, &compute, &e2e}) h->bounds = latency_bounds;
  batch.bounds = std::move(batch_bounds);
  reset();
}

void FastStats::Histogram::observe(double v) {
  // bisect_left: the first bound >= v, as the Python histograms count.
  const size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
  ++counts[i];
  sum += v;
  ++count;
}

void FastStats::Histogram::reset() {
  counts.assign(bounds.size() + 1, 0);
  sum = 0;
  count = 0;
}

void FastStats::reset() {
  for (Histogram* h : {&queue, &compute, &e2e, &batch}) h->reset();
  success = success_ns = queue_ns = compute_ns = inference_count = 0;
  batch_execs.clear();
}

void FastStats::record(int64_t rows, int64_t queue_us, int64_t compute_us, int64_t batch_size, double e2e_s) {
  ++success;
  queue.observe(static_cast<double>(queue_us) * 1e-6);
  compute.observe(static_cast<double>(compute_us) * 1e-6);
  e2e.observe(e2e_s);
  batch.observe(static_cast<double>(batch_size));
  success_ns += static_cast<int64_t>(e2e_s * 1e9);
  queue_ns += queue_us * 1000;
  compute_ns += compute_us * 1000;
  inference_count += rows;
  last_inference_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // A batch of B rows served B/rows requests like this one: this request's share.
  auto& b = batch_execs[batch_size];
  const double share = static_cast<double>(rows) / static_cast<double>(std::max<int64_t>(batch_size, 1));
  b.first += share;
  b.second += share * static_cast<double>(compute_us) * 1e3;
}

// ---- learning ---------------------------------------------------------------------------------

FastInfer::FastInfer(std::string auth_header, int64_t max_body_bytes, std::string request_id_prefix)
    : auth_header_(std::move(auth_header)),
      max_body_bytes_(max_body_bytes),
      rid_prefix_(std::move(request_id_prefix)),
      channel_(std::make_shared<CompletionChannel>(true)) {}

std::shared_ptr<FastModel> FastInfer::find_model(const void* key) const {
  auto it = models_.find(key);
  return it == models_.end() ? nullptr : it->second;
}

void FastInfer::add_model(const void* key, std::shared_ptr<FastModel> m) { models_[key] = std::move(m); }

void FastInfer::add_route(std::string path, std::shared_ptr<FastModel> m) {
  if (routes_.size() >= 1024) routes_.clear();  // as the Python path's route cache
  routes_[std::move(path)] = std::move(m);
}

void FastInfer::add_template(FastModel& m, std::string header, std::shared_ptr<const FastTemplate> t) {
  if (m.templates.size() >= 256) m.templates.clear();  // as the Python path's header cache
  m.templates[std::move(header)] = std::move(t);
}

bool FastInfer::has_template(std::string_view path, std::string_view header) const {
  auto r = routes_.find(std::string(path));
  return r != routes_.end() && r->second->templates.count(std::string(header)) != 0;
}

std::vector<std::shared_ptr<FastModel>> FastInfer::clear() {
  std::vector<std::shared_ptr<FastModel>> out;
  for (auto& kv : models_) out.push_back(std::move(kv.second));
  models_.clear();
  routes_.clear();
  return out;
}

// ---- requests ---------------------------------------------------------------------------------

FastRequest* FastInfer::take(std::string_view data, void* user) {
  HttpHead head;
  if (parse_http_head(data, head) != HeadParse::kOk) return nullptr;
  // Exactly one whole request: a partial body or a pipelined next request go the full way.
  if (head.content_length != static_cast<int64_t>(data.size() - head.head_bytes)) return nullptr;
  if (head.content_length > max_body_bytes_ || head.inference_header_length < 0) return nullptr;
  if (!auth_header_.empty() && !(head.has_authorization && same_secret(head.authorization, auth_header_)))
    return nullptr;
  auto route = routes_.find(std::string(head.path));
  if (route == routes_.end()) return nullptr;
  const std::shared_ptr<FastModel>& model = route->second;
  const std::string_view body = data.substr(head.head_bytes);
  const size_t header_len = static_cast<size_t>(head.inference_header_length);
  if (header_len > body.size()) return nullptr;
  auto t = model->templates.find(std::string(body.substr(0, header_len)));
  if (t == model->templates.end()) return nullptr;
  const FastTemplate& tmpl = *t->second;
  if (body.size() - header_len != tmpl.binary_bytes) return nullptr;

  auto f = std::make_unique<FastRequest>();
  f->t0 = Clock::now();
  const char* src = body.data() + header_len;
  for (const FastTemplate::Input& in : tmpl.inputs) {
    Tensor x = Tensor::empty(in.dtype, in.shape);
    if (in.dtype == DType::kBool) {  // any non-zero byte is true, as the Python path reads it
      auto* dst = static_cast<unsigned char*>(x.data);
      for (size_t i = 0; i < in.bytes; ++i) dst[i] = src[i] != 0;
    } else if (in.bytes) {
      std::memcpy(x.data, src, in.bytes);
    }
    src += in.bytes;
    f->req.feed_names.push_back(in.name);
    f->req.feeds.push_back(std::move(x));
  }
  f->req.output_names = tmpl.output_names;
  f->req.priority = tmpl.priority;
  f->req.timeout_us = tmpl.timeout_us;
  f->req.channel = channel_.get();
  try {
    model->batcher->prepare(f->req);
  } catch (const Error&) {
    return nullptr;  // the Python path words the error
  }
  f->req.user = f.get();
  f->model = model;
  f->tmpl = t->second;
  f->channel = channel_;
  f->user = user;
  f->path.assign(head.path);
  f->request_number = next_request_number();
  prepared_.push_back(f.get());
  ++taken_;
  return f.release();
}

std::vector<FastRequest*> FastInfer::take_prepared() {
  std::vector<FastRequest*> out;
  out.swap(prepared_);
  return out;
}

void FastInfer::submit_all(std::vector<FastRequest*>& reqs, std::vector<FastRequest*>& answered) {
  std::vector<Batcher*> woken;
  for (FastRequest* f : reqs) {
    Batcher* b = f->model->batcher;
    SubmitResult res = b->submit(&f->req, false);
    if (res != SubmitResult::kAccepted) {
      f->refused = res;
      answered.push_back(f);
    } else if (std::find(woken.begin(), woken.end(), b) == woken.end()) {
      woken.push_back(b);
    }
  }
  for (Batcher* b : woken) b->notify();
}

bool FastInfer::settle(FastRequest& f) {
  if (f.refused != SubmitResult::kAccepted || f.req.outcome != Outcome::kOk) return false;
  for (const Tensor& t : f.req.outputs)
    if (!kserve_datatype(t.dtype)) return false;  // learn() never admits such models
  const double e2e = std::chrono::duration<double>(Clock::now() - f.t0).count();
  f.model->stats->record(f.tmpl->rows, f.req.queue_us, f.req.compute_us, f.req.batch_size, e2e);
  ++responses_ok_;
  return true;
}

// ---- the response -----------------------------------------------------------------------------
// Byte for byte what the Python path sends: status line, date, content-length, x-request-id,
// content-type (and inference-header-content-length when binary data follows), then the JSON
// header and the binary tensors.

namespace {

// A double as Python's repr writes it (json.dumps uses it): the shortest digits that read back
// the same, fixed notation for decimal exponents in [-4, 16), else d.ddde+XX; NaN and Infinity as
// json.dumps spells them.
void append_python_float(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // [-]d[.ddd]e(+|-)XX
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits(1, sci[0]);
  if (e > 1) digits.append(sci.substr(2, e - 2));
  const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int point = exp10 + 1;  // digits before the decimal point
  const int n = static_cast<int>(digits.size());
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-point), '0');
      out += digits;
    } else if (point < n) {
      out.append(digits, 0, static_cast<size_t>(point));
      out += '.';
      out.append(digits, static_cast<size_t>(point), std::string::npos);
    } else {
      out += digits;
      out.append(static_cast<size_t>(point - n), '0');
      out += ".0";
    }
    return;
  }
  out += digits[0];
  if (n > 1) {
    out += '.';
    out.append(digits, 1, std::string::npos);
  }
  out += exp10 < 0 ? "e-" : "e+";
  const int a = std::abs(exp10);
  if (a < 10) out += '0';
  out += std::to_string(a);
}

template <typename T>
void append_ints(std::string& out, const Tensor& x) {
  const T* p = static_cast<const T*>(x.data);
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ',';
    out += std::to_string(p[i]);
  }
}

// `"data":[...]` of an output answered in JSON (flattened, as the Python path's tolist()).
void append_json_data(std::string& out, const Tensor& x) {
  out += "\"data\":[";
  const int64_t n = x.numel();
  switch (x.dtype) {
    case DType::kBool: {
      const auto* p = static_cast<const unsigned char*>(x.data);
      for (int64_t i = 0; i < n; ++i) out += (i ? "," : ""), out += p[i] ? "true" : "false";
      break;
    }
    case DType::kU8: append_ints<uint8_t>(out, x); break;
    case DType::kU16: append_ints<uint16_t>(out, x); break;
    case DType::kU32: append_ints<uint32_t>(out, x); break;
    case DType::kU64: append_ints<uint64_t>(out, x); break;
    case DType::kI8: append_ints<int8_t>(out, x); break;
    case DType::kI16: append_ints<int16_t>(out, x); break;
    case DType::kI32: append_ints<int32_t>(out, x); break;
    case DType::kI64: append_ints<int64_t>(out, x); break;
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        if (i) out += ',';
        append_python_float(out, static_cast<const float*>(x.data)[i]);
      }
      break;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        if (i) out += ',';
        append_python_float(out, static_cast<const double*>(x.data)[i]);
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        if (i) out += ',';
        append_python_float(out, half_to_double(static_cast<const uint16_t*>(x.data)[i]));
      }
      break;
    default:
      break;  // learn() admits no other output types
  }
  out += ']';
}

size_t tensor_bytes(const FastRequest& f) {
  size_t n = 0;
  for (size_t k = 0; k < f.req.outputs.size(); ++k)
    if (f.tmpl->output_binary[k]) n += f.req.outputs[k].nbytes();
  return n;
}

bool any_binary(const FastRequest& f) {
  for (size_t k = 0; k < f.req.outputs.size(); ++k)
    if (f.tmpl->output_binary[k]) return true;
  return false;
}

constexpr std::string_view kJsonType = "\r\ncontent-type: application/json";

}  // namespace

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  double v;
  if (exp == 0) {
    v = std::ldexp(static_cast<double>(frac), -24);
  } else if (exp == 31) {
    v = frac ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(static_cast<double>(frac | 0x400), exp - 25);
  }
  return sign ? -v : v;
}

std::string FastInfer::request_id(const FastRequest& f) const {
  std::string s = rid_prefix_;
  s.resize(s.size() + hex_len(f.request_number));
  put_hex(&s[rid_prefix_.size()], f.request_number);
  return s;
}

std::string FastInfer::response_json(const FastRequest& f) const {
  const FastTemplate& t = *f.tmpl;
  std::string out = t.response_prefix;
  for (size_t k = 0; k < f.req.outputs.size(); ++k) {
    const Tensor& x = f.req.outputs[k];
    if (k) out += ',';
    out += t.output_heads[k];
    out += kserve_datatype(x.dtype);
    out += kShape;
    for (size_t d = 0; d < x.shape.size(); ++d) {
      if (d) out += ',';
      out += std::to_string(x.shape[d]);
    }
    if (t.output_binary[k]) {
      out += kSize;
      out += std::to_string(x.nbytes());
      out += "}}";
    } else {
      out += "],";
      append_json_data(out, x);
      out += '}';
    }
  }
  out += "]}";
  return out;
}

size_t FastInfer::response_size(const FastRequest& f, const std::string& json) const {
  const size_t body = json.size() + tensor_bytes(f);
  size_t n = kStatusLine.size() + date_line_.size() + kLength.size() + decimal_len(body) + kRequestId.size() +
             rid_prefix_.size() + hex_len(f.request_number) + 4 + body;
  if (any_binary(f))
    n += kTypeAndHeader.size() + decimal_len(json.size());
  else
    n += kJsonType.size();
  return n;
}

void FastInfer::render_response(const FastRequest& f, const std::string& json, char* out) const {
  out = put(out, kStatusLine);
  out = put(out, date_line_);
  out = put(out, kLength);
  out = put_decimal(out, static_cast<int64_t>(json.size() + tensor_bytes(f)));
  out = put(out, kRequestId);
  out = put(out, rid_prefix_);
  out = put_hex(out, f.request_number);
  if (any_binary(f)) {
    out = put(out, kTypeAndHeader);
    out = put_decimal(out, static_cast<int64_t>(json.size()));
  } else {
    out = put(out, kJsonType);
  }
  out = put(out, "\r\n\r\n");
  out = put(out, json);
  for (size_t k = 0; k < f.req.outputs.size(); ++k) {
    const Tensor& x = f.req.outputs[k];
    if (!f.tmpl->output_binary[k] || !x.nbytes()) continue;
    if (x.dtype == DType::kBool) {  // one byte each, 0 or 1
      const auto* src = static_cast<const unsigned char*>(x.data);
      for (size_t i = 0; i < x.nbytes(); ++i) *out++ = static_cast<char>(src[i] != 0);
    } else {
      out = put(out, std::string_view(static_cast<const char*>(x.data), x.nbytes()));
    }
  }
}

}  // namespace runnx
