#include "onnx/external_data.h"

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/status.h"
#include "onnx/wire.h"

namespace runnx {

namespace {

// Strict decimal: digits only, no sign, no overflow.
bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// "" when `p` does not resolve; `*err` then holds errno.
std::string real_path(const std::string& p, int* err) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) {
    *err = errno;
    return "";
  }
  return buf;
}

}  // namespace

std::shared_ptr<MappedFile> ExternalData::open(const std::string& where,
                                               const std::string& location) {
  const std::string loc = wire::printable(location);  // for messages
  if (base_dir_.empty())
    fail(ErrorKind::kInvalidModel, where, ": external data '", loc,
         "' cannot be resolved: the model was not loaded from a file (no base directory)");
  if (location.empty())
    fail(ErrorKind::kInvalidModel, where, ": external data has no 'location'");
  if (location.find('\0') != std::string::npos)
    fail(ErrorKind::kInvalidModel, where, ": external data location '", loc,
         "' contains a NUL byte");
  // Absolute paths, POSIX or Windows-style, could name any file on the machine.
  const bool drive = location.size() >= 2 && location[1] == ':';
  if (location[0] == '/' || location[0] == '\\' || drive)
    fail(ErrorKind::kInvalidModel, where, ": external data location '", loc,
         "' is an absolute path; only paths inside the model's folder are allowed");
  // Any '..' component may climb out of the model's folder.
  size_t start = 0;
  while (start <= location.size()) {
    size_t end = location.find_first_of("/\\", start);
    if (end == std::string::npos) end = location.size();
    if (end - start == 2 && location.compare(start, 2, "..") == 0)
      fail(ErrorKind::kInvalidModel, where, ": external data location '", loc,
           "' escapes the model's folder through '..'");
    start = end + 1;
  }
  int err = 0;
  if (base_real_.empty()) {
    base_real_ = real_path(base_dir_, &err);
    if (base_real_.empty())
      fail(ErrorKind::kInvalidModel, where, ": model folder '", wire::printable(base_dir_, 4096),
           "' cannot be resolved: ", std::strerror(err));
  }
  const std::string real = real_path(base_dir_ + "/" + location, &err);
  if (real.empty())
    fail(ErrorKind::kInvalidModel, where, ": external data file '", loc, "' not found in '",
         wire::printable(base_dir_, 4096), "': ", std::strerror(err));
  // A symlink inside the folder must not lead out of it.
  const std::string prefix = base_real_ == "/" ? "/" : base_real_ + "/";
  if (real.compare(0, prefix.size(), prefix) != 0)
    fail(ErrorKind::kInvalidModel, where, ": external data location '", loc, "' resolves to '",
         wire::printable(real, 4096), "', outside the model's folder '",
         wire::printable(base_real_, 4096), "'");
  auto it = files_.find(real);
  if (it != files_.end()) return it->second;
  std::string error;
  std::shared_ptr<MappedFile> f = MappedFile::open(real, &error);
  if (!f)
    fail(ErrorKind::kInvalidModel, where, ": cannot open external data file '", loc, "': ",
         error);
  files_.emplace(real, f);
  return f;
}

Tensor ExternalData::load(const std::string& where,
                          const std::vector<std::pair<std::string, std::string>>& entries,
                          DType dtype, Shape shape, size_t nbytes) {
  std::string location;
  uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (const auto& [key, value] : entries) {
    if (key == "location") {
      location = value;
    } else if (key == "offset") {
      if (!parse_u64(value, &offset))
        fail(ErrorKind::kInvalidModel, where, ": external data offset '", wire::printable(value),
             "' is not a non-negative integer");
    } else if (key == "length") {
      if (!parse_u64(value, &length))
        fail(ErrorKind::kInvalidModel, where, ": external data length '", wire::printable(value),
             "' is not a non-negative integer");
      has_length = true;
    }  // "checksum" and other keys are informational
  }
  if (has_length && length != nbytes)
    fail(ErrorKind::kInvalidModel, where, ": external data length ", length,
         " disagrees with the tensor's shape ", shape_str(shape), " and type ", dtype_name(dtype),
         " (", nbytes, " bytes)");
  std::shared_ptr<MappedFile> f = open(where, location);
  if (offset > f->size() || f->size() - offset < nbytes)
    fail(ErrorKind::kInvalidModel, where, ": external data '", wire::printable(location),
         "' holds ", f->size(), " bytes; the tensor needs ", nbytes, " at offset ", offset);
  if (nbytes == 0) return Tensor::empty(dtype, std::move(shape));
  const uint8_t* p = f->data() + offset;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(dtype) == 0) {  // in place
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = const_cast<uint8_t*>(p);
    t.owner = f;
    return t;
  }
  Tensor copy = Tensor::empty(dtype, std::move(shape));
  std::memcpy(copy.data, p, nbytes);
  return copy;
}

}  // namespace runnx
