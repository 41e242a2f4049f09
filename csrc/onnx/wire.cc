#include "onnx/wire.h"

#include <cstring>

#include "common/status.h"

namespace runnx::wire {

namespace {

const char* wire_type_name(uint32_t wt) {
  switch (wt) {
    case 0: return "varint";
    case 1: return "fixed64";
    case 2: return "length-delimited";
    case 3: return "start-group";
    case 4: return "end-group";
    case 5: return "fixed32";
    default: return "invalid";
  }
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b = at(i);
  size_t n;
  uint8_t lo = 0x80, hi = 0xbf;  // range of the second byte
  if (b >= 0xc2 && b <= 0xdf) {
    n = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    n = 3;
    if (b == 0xe0) lo = 0xa0;  // overlong
    if (b == 0xed) hi = 0x9f;  // surrogates
  } else if (b >= 0xf0 && b <= 0xf4) {
    n = 4;
    if (b == 0xf0) lo = 0x90;  // overlong
    if (b == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return n;
}

}  // namespace

std::string printable(std::string_view s, size_t max) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t end = s.size() < max ? s.size() : max;
  for (size_t i = 0; i < end;) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    if (b >= 0x20 && b < 0x7f) {
      out += static_cast<char>(b);
      ++i;
    } else if (const size_t n = b >= 0x80 ? utf8_sequence(s, i) : 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
      ++i;
    }
  }
  if (end < s.size()) out += str_cat("...(", s.size(), " bytes)");
  return out;
}

// ---- Cursor -------------------------------------------------------------------------------------

void Cursor::fail_truncated(size_t need) const {
  fail(ErrorKind::kInvalidModel, "truncated model: field '", name_, "' at byte ", field_offset_,
       " needs ", need, " bytes at byte ", pos_, " but only ", end_ - pos_, " remain");
}

uint64_t Cursor::varint() {
  const size_t start = pos_;
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= end_)
      fail(ErrorKind::kInvalidModel, "truncated model: field '", name_, "' at byte ", field_offset_,
           ": varint starting at byte ", start, " runs past the end of its message at byte ", end_);
    const uint8_t b = base_[pos_++];
    // The 10th byte holds bit 63 only; more means a value wider than 64 bits.
    if (shift == 63 && b > 1) break;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  fail(ErrorKind::kInvalidModel, "field '", name_, "' at byte ", field_offset_,
       ": varint starting at byte ", start, " is longer than 64 bits");
}

uint32_t Cursor::fixed32() {
  if (end_ - pos_ < 4) fail_truncated(4);
  uint32_t v;
  std::memcpy(&v, base_ + pos_, 4);
  pos_ += 4;
  return v;
}

uint64_t Cursor::fixed64() {
  if (end_ - pos_ < 8) fail_truncated(8);
  uint64_t v;
  std::memcpy(&v, base_ + pos_, 8);
  pos_ += 8;
  return v;
}

// ---- Run ----------------------------------------------------------------------------------------

size_t Run::count() const {
  switch (elem) {
    case WireType::kVarint: {
      size_t n = 0;
      for (size_t i = 0; i < bytes.size; ++i) n += (bytes.data[i] & 0x80) == 0;
      if (bytes.size && (bytes.data[bytes.size - 1] & 0x80))
        fail(ErrorKind::kInvalidModel, "truncated model: field '", name, "' at byte ", field_offset,
             ": its last varint runs past the end of the field at byte ",
             bytes.offset + bytes.size);
      return n;
    }
    case WireType::kFixed32:
    case WireType::kFixed64: {
      const size_t width = elem == WireType::kFixed32 ? 4 : 8;
      if (bytes.size % width)
        fail(ErrorKind::kInvalidModel, "field '", name, "' at byte ", field_offset,
             ": packed length ", bytes.size, " is not a multiple of ", width);
      return bytes.size / width;
    }
    default:
      return 0;
  }
}

Cursor Run::cursor() const {
  return Cursor(bytes.data - bytes.offset, bytes.offset, bytes.offset + bytes.size, name,
                field_offset);
}

// ---- Reader -------------------------------------------------------------------------------------

Reader::Reader(const uint8_t* base, size_t begin, size_t end, const char* type)
    : base_(base), begin_(begin), pos_(begin), end_(end), type_(type) {}

bool Reader::next() {
  if (pending_) skip();
  if (pos_ >= end_) return false;
  tag_offset_ = pos_;
  uint64_t tag;
  if (base_[pos_] < 0x80) {
    tag = base_[pos_++];
  } else {
    const std::string what = std::string(type_) + " (field tag)";
    Cursor c(base_, pos_, end_, what.c_str(), tag_offset_);
    tag = c.varint();
    pos_ = c.pos();
  }
  const uint64_t number = tag >> 3;
  const uint32_t wt = static_cast<uint32_t>(tag & 7);
  if (number == 0 || number > (uint64_t{1} << 29) - 1)
    runnx::fail(ErrorKind::kInvalidModel, "invalid field number ", number,
                " in the tag of a field of ", type_, " at byte ", tag_offset_);
  if (wt == 3 || wt == 4 || wt > 5)
    runnx::fail(ErrorKind::kInvalidModel, "invalid wire type ", wt, " (", wire_type_name(wt),
                ") in field ", number, " of ", type_, " at byte ", tag_offset_);
  field_ = static_cast<uint32_t>(number);
  wt_ = static_cast<WireType>(wt);
  pending_ = true;
  return true;
}

void Reader::fail(const char* name, const std::string& what) const {
  runnx::fail(ErrorKind::kInvalidModel, "field '", name, "' at byte ", tag_offset_, ": ", what);
}

void Reader::expect(const char* name, WireType wt) const {
  if (wt_ != wt)
    fail(name, str_cat("has wire type ", static_cast<int>(wt_), " (",
                       wire_type_name(static_cast<uint32_t>(wt_)), "), expected ",
                       static_cast<int>(wt), " (", wire_type_name(static_cast<uint32_t>(wt)), ")"));
}

uint64_t Reader::u64(const char* name) {
  expect(name, WireType::kVarint);
  Cursor c(base_, pos_, end_, name, tag_offset_);
  const uint64_t v = c.varint();
  pos_ = c.pos();
  pending_ = false;
  return v;
}

int32_t Reader::i32(const char* name) {
  return static_cast<int32_t>(static_cast<uint32_t>(u64(name)));
}

float Reader::f32(const char* name) {
  expect(name, WireType::kFixed32);
  Cursor c(base_, pos_, end_, name, tag_offset_);
  const uint32_t bits = c.fixed32();
  pos_ = c.pos();
  pending_ = false;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

Bytes Reader::length_delimited(const char* name) {
  Cursor c(base_, pos_, end_, name, tag_offset_);
  const uint64_t len = c.varint();
  const size_t remain = end_ - c.pos();
  if (len > remain)
    runnx::fail(ErrorKind::kInvalidModel, "truncated model: field '", name, "' at byte ",
                tag_offset_, " declares length ", len, " but only ", remain, " bytes remain");
  Bytes b{base_ + c.pos(), static_cast<size_t>(len), c.pos()};
  pos_ = c.pos() + b.size;
  pending_ = false;
  return b;
}

Bytes Reader::bytes(const char* name) {
  expect(name, WireType::kLen);
  return length_delimited(name);
}

std::string Reader::str(const char* name) {
  const Bytes b = bytes(name);
  return std::string(reinterpret_cast<const char*>(b.data), b.size);
}

Reader Reader::message(const char* name, const char* type) {
  const Bytes b = bytes(name);
  return Reader(base_, b.offset, b.offset + b.size, type);
}

Run Reader::run(const char* name, WireType elem) {
  Run r;
  r.elem = elem;
  r.name = name;
  r.field_offset = tag_offset_;
  if (wt_ == WireType::kLen) {
    r.bytes = length_delimited(name);
    r.count();  // validates whole elements now, while the error can still name the field
    return r;
  }
  expect(name, elem);
  Cursor c(base_, pos_, end_, name, tag_offset_);
  if (elem == WireType::kVarint) c.varint();
  else if (elem == WireType::kFixed32) c.fixed32();
  else c.fixed64();
  r.bytes = Bytes{base_ + pos_, c.pos() - pos_, pos_};
  pos_ = c.pos();
  pending_ = false;
  return r;
}

void Reader::skip() {
  const std::string name = std::string(type_) + " field " + std::to_string(field_);
  Cursor c(base_, pos_, end_, name.c_str(), tag_offset_);
  switch (wt_) {
    case WireType::kVarint: c.varint(); break;
    case WireType::kFixed64: c.fixed64(); break;
    case WireType::kFixed32: c.fixed32(); break;
    case WireType::kLen: length_delimited(name.c_str()); return;
  }
  pos_ = c.pos();
  pending_ = false;
}

}  // namespace runnx::wire
