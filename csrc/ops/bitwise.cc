// Bitwise ops on integer tensors: BitwiseAnd/Or/Xor (broadcasting), BitwiseNot, BitShift.
// BitShift follows opset 28's definition for every opset (older ones left shifts of >= width
// undefined): a shift by a negative amount or by >= the bit width gives the sign fill alone
// (-1 for a right shift of a negative value, else 0); left shifts of signed values wrap.
#include <array>
#include <string>
#include <type_traits>

#include "ops/broadcast.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

enum class BitOp { kAnd, kOr, kXor, kShl, kShr };

template <BitOp kOp, typename T>
inline T apply(T a, T b) {
  if constexpr (kOp == BitOp::kAnd) return static_cast<T>(a & b);
  if constexpr (kOp == BitOp::kOr) return static_cast<T>(a | b);
  if constexpr (kOp == BitOp::kXor) return static_cast<T>(a ^ b);
  using U = std::make_unsigned_t<T>;
  constexpr int kBits = sizeof(T) * 8;
  // An out-of-range amount (negative, or >= width) as one unsigned compare; shift by 0 then.
  const bool in_range = static_cast<U>(b) < static_cast<U>(kBits);
  const int s = in_range ? static_cast<int>(b) : 0;
  if constexpr (kOp == BitOp::kShl) {
    // Computed in at least int width and truncated back: wraps without signed overflow.
    using W = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, U>;
    const T r = static_cast<T>(static_cast<W>(static_cast<U>(a)) << s);
    return in_range ? r : T(0);
  } else {
    const T r = static_cast<T>(a >> s);  // arithmetic for signed T (C++20)
    const T fill = std::is_signed_v<T> && a < 0 ? static_cast<T>(-1) : T(0);
    return in_range ? r : fill;
  }
}

template <BitOp kOp, typename T>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& y, ThreadPool& pool) {
  BroadcastLoop<2> loop({&a.shape, &b.shape}, y.shape);
  const T* pa = a.ptr<T>();
  const T* pb = b.ptr<T>();
  T* py = y.ptr<T>();
  const int64_t sa = loop.inner_stride(0), sb = loop.inner_stride(1);
  loop.run(pool, [&](int64_t o, const std::array<int64_t, 2>& off, int64_t n) {
    const T* x = pa + off[0];
    const T* z = pb + off[1];
    T* out = py + o;
    if (sa && sb) {
      for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp, T>(x[i], z[i]);
    } else if (sa) {
      const T c = z[0];
      for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp, T>(x[i], c);
    } else if (sb) {
      const T c = x[0];
      for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp, T>(c, z[i]);
    } else {
      const T c = apply<kOp, T>(x[0], z[0]);
      for (int64_t i = 0; i < n; ++i) out[i] = c;
    }
  });
}

template <BitOp kOp>
class BitwiseBinaryKernel : public Kernel {
 public:
  explicit BitwiseBinaryKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override { compute<kOp>(ctx); }

  template <BitOp kRunOp>
  static void compute(KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    RUNNX_CHECK(a.dtype == b.dtype, kInvalidArgument, node.label(), ": input types differ (",
                dtype_name(a.dtype), " and ", dtype_name(b.dtype), ")");
    const Shape out = broadcast_shapes({&a.shape, &b.shape}, node);
    dispatch_integer(a.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, a.dtype, out);
      if (y.numel() == 0) return;
      binary_loop<kRunOp, T>(a, b, y, ctx.pool());
    });
  }
};

class BitShiftKernel : public Kernel {
 public:
  explicit BitShiftKernel(const KernelInfo& info) {
    const std::string d = info.node.get_string("direction", "");
    RUNNX_CHECK(d == "LEFT" || d == "RIGHT", kInvalidModel, info.node.label(),
                ": direction must be LEFT or RIGHT, got '", d, "'");
    left_ = d == "LEFT";
  }
  void run(KernelContext& ctx) const override {
    if (left_)
      BitwiseBinaryKernel<BitOp::kShl>::compute<BitOp::kShl>(ctx);
    else
      BitwiseBinaryKernel<BitOp::kShr>::compute<BitOp::kShr>(ctx);
  }

 private:
  bool left_ = true;
};

class BitwiseNotKernel : public Kernel {
 public:
  explicit BitwiseNotKernel(const KernelInfo&) {}
  int inplace_input() const override { return 0; }
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    dispatch_integer(x.dtype, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      const T* px = x.ptr<T>();
      T* py = y.ptr<T>();
      ctx.pool().parallel_for(y.numel(), 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) py[i] = static_cast<T>(~px[i]);
      });
    });
  }
};

}  // namespace

void register_bitwise_ops(OpRegistry& r) {
  r.add("BitwiseAnd", "", 18, factory<BitwiseBinaryKernel<BitOp::kAnd>>());
  r.add("BitwiseOr", "", 18, factory<BitwiseBinaryKernel<BitOp::kOr>>());
  r.add("BitwiseXor", "", 18, factory<BitwiseBinaryKernel<BitOp::kXor>>());
  r.add("BitwiseNot", "", 18, factory<BitwiseNotKernel>());
  r.add("BitShift", "", 11, factory<BitShiftKernel>());
}

}  // namespace runnx
