#include "ops/kernel.h"

namespace runnx {

void register_shape_ops_ops(OpRegistry& r) { (void)r; }

}  // namespace runnx
