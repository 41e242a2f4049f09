// A file mapped read-only into memory. Shared by the tensors that point into it: the mapping
// lives until the last of them (and the reader) lets go.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace runnx {

// A file of at most this size is read whole at load: its pages are mapped in one go (by open,
// or by populate_mapping) rather than a fault per 64 KiB; for a larger one, pages the model never
// reads, like most embedding rows, stay out.
inline constexpr size_t kMapWholeBelow = size_t{32} << 20;

// Maps in every page of [p, p + n), part of a read-only file mapping, in one call where the
// kernel has MADV_POPULATE_READ (Linux 5.14), else by reading a byte of each page.
void populate_mapping(const uint8_t* p, size_t n);

class MappedFile {
 public:
  // Maps `path`; returns nullptr and sets `*error` (the OS reason) when it cannot. A file of at
  // most `populate_upto` bytes has its pages mapped in now; a larger one as they are read (or
  // by the caller, with populate_mapping).
  static std::shared_ptr<MappedFile> open(const std::string& path, std::string* error,
                                          size_t populate_upto = kMapWholeBelow);
  // Maps `path`; throws InvalidArgument naming the path when it cannot.
  static std::shared_ptr<MappedFile> open_or_throw(const std::string& path, size_t populate_upto = kMapWholeBelow);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace runnx
