#include "onnx/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/status.h"

namespace runnx {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, std::string* error, size_t populate_upto) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = "not a regular file";
    ::close(fd);
    return nullptr;
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {  // mmap refuses length 0; an empty file maps to nothing
    const int flags = MAP_PRIVATE | (f->size_ <= populate_upto ? MAP_POPULATE : 0);
    void* p = ::mmap(nullptr, f->size_, PROT_READ, flags, fd, 0);
    if (p == MAP_FAILED) {
      *error = std::strerror(errno);
      ::close(fd);
      return nullptr;
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return f;
}

std::shared_ptr<MappedFile> MappedFile::open_or_throw(const std::string& path, size_t populate_upto) {
  std::string error;
  std::shared_ptr<MappedFile> f = open(path, &error, populate_upto);
  if (!f) fail(ErrorKind::kInvalidArgument, "cannot open model file '", path, "': ", error);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void populate_mapping(const uint8_t* p, size_t n) {
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14; older headers lack the name
#endif
  constexpr uintptr_t kPage = 4096;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~(kPage - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(p) + n;
  if (n == 0 || ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_READ) == 0 || errno != EINVAL) return;
  // An older kernel refuses the advice (EINVAL): a read per page faults them in. Other errors
  // (EFAULT: the file shrank under the mapping) leave the pages to fault, or fail, when read.
  uint8_t sink = 0;
  for (uintptr_t a = lo; a < hi; a += kPage)
    sink ^= *reinterpret_cast<const volatile uint8_t*>(a);
  (void)sink;
}

}  // namespace runnx
