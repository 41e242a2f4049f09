// Typed errors. C++ throws these; the bindings map each kind to a Python exception class
// (runnx.InvalidModel, ...) so a user can catch the category they can act on.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace runnx {

enum class ErrorKind { kInvalidModel, kUnsupportedOp, kInvalidArgument, kResourceExhausted, kRuntime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, const Args&... args) {
  throw Error(kind, str_cat(args...));
}

}  // namespace runnx

// Cheap checks that stay on in release builds: every one guards untrusted input.
#define RUNNX_CHECK(cond, kind, ...) \
  do {                               \
    if (!(cond)) ::runnx::fail(::runnx::ErrorKind::kind, __VA_ARGS__); \
  } while (0)
