// Shapes known at load time, before any run: initializers, and graph inputs whose declared dims
// are all numbers (a feed must match them). Passes use it to fold Shape/Size and to check the
// shapes a fusion assumes.
#pragma once
#include <map>
#include <string>

#include "ir/graph.h"

namespace runnx {

class StaticShapes {
 public:
  explicit StaticShapes(const Model& model);
  // The fixed shape of `value`, or nullptr when it depends on the feeds.
  const Shape* find(const std::string& value) const;

 private:
  std::map<std::string, Shape> shapes_;
};

}  // namespace runnx
