// Bounded protobuf wire-format reader: the only code in runnx that reads a length from a model
// file. Nothing here trusts a length, a count or a tag: each is checked against the bytes that
// remain in the enclosing message, and every error is InvalidModel naming the field being read and
// its absolute byte offset in the model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace runnx::wire {

// A string from the file made safe for an error message: control bytes and bytes that are not
// well-formed UTF-8 become \xNN, and it is cut at `max` bytes. (Python decodes messages as
// UTF-8; a hostile name must not turn InvalidModel into a UnicodeDecodeError.)
std::string printable(std::string_view s, size_t max = 200);

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// Bytes inside the model buffer; `offset` is the absolute position of data[0] (for errors and for
// in-place tensors).
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
};

// Raw reads over [pos, end) of a buffer, for packed runs. `name` names the field in errors.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t pos, size_t end, const char* name, size_t field_offset)
      : base_(base), pos_(pos), end_(end), name_(name), field_offset_(field_offset) {}
  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }
  uint64_t varint();
  uint32_t fixed32();
  uint64_t fixed64();

 private:
  [[noreturn]] void fail_truncated(size_t need) const;
  const uint8_t* base_;
  size_t pos_, end_;
  const char* name_;
  size_t field_offset_;
};

// One occurrence of a repeated scalar field: a packed run (wire type 2) or a single unpacked
// element. Kept so a TensorProto can size its data before it allocates (fields come in any order).
struct Run {
  Bytes bytes;
  WireType elem = WireType::kVarint;  // the element's encoding
  const char* name = "";              // "TensorProto.float_data"
  size_t field_offset = 0;

  // Elements in the run; checks a packed run holds whole elements.
  size_t count() const;
  Cursor cursor() const;
};

class Reader {
 public:
  // The message `type` ("GraphProto") stored in [begin, end) of the buffer that starts at `base`.
  Reader(const uint8_t* base, size_t begin, size_t end, const char* type);

  // Moves to the next field, skipping the value of the current one if it was not read.
  // Returns false at the end of the message. Rejects field number 0 and wire types 3, 4, 6, 7.
  bool next();
  uint32_t field() const { return field_; }
  WireType wire_type() const { return wt_; }
  size_t field_offset() const { return tag_offset_; }
  const char* type() const { return type_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }

  // Read the current field's value after checking its wire type; `name` ("GraphProto.node")
  // names the field in errors.
  uint64_t u64(const char* name);
  int64_t i64(const char* name) { return static_cast<int64_t>(u64(name)); }
  int32_t i32(const char* name);  // an int32/enum: 64-bit varint truncated, as protobuf does
  float f32(const char* name);
  Bytes bytes(const char* name);
  std::string str(const char* name);
  Reader message(const char* name, const char* type);
  // A repeated scalar field with `elem` encoding, packed or not.
  Run run(const char* name, WireType elem);
  // Skips the current value whatever its (valid) wire type.
  void skip();

  // InvalidModel: "field '<name>' at byte <field offset>: <what>".
  [[noreturn]] void fail(const char* name, const std::string& what) const;

 private:
  void expect(const char* name, WireType wt) const;
  Bytes length_delimited(const char* name);

  const uint8_t* base_;
  size_t begin_, pos_, end_;
  const char* type_;
  uint32_t field_ = 0;
  WireType wt_ = WireType::kVarint;
  size_t tag_offset_ = 0;
  bool pending_ = false;  // the current field's value has not been consumed yet
};

}  // namespace runnx::wire
