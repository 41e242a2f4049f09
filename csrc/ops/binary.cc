// Broadcasting binary ops (arithmetic, comparison, logic), the variadic Min/Max/Sum/Mean, PRelu
// and Where. Broadcast operands are read through zero strides, never materialised.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/broadcast.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {

namespace {

enum class Bin { kAdd, kSub, kMul, kDiv, kPow, kMod, kFMod, kMin, kMax, kPRelu,
                 kEq, kLt, kGt, kLe, kGe, kAnd, kOr, kXor };

constexpr bool is_compare(Bin b) { return b >= Bin::kEq && b <= Bin::kGe; }
constexpr bool is_logic(Bin b) { return b >= Bin::kAnd; }

template <Bin B, typename T>
inline auto apply(T a, T b) {
  if constexpr (B == Bin::kAdd) return static_cast<T>(a + b);
  if constexpr (B == Bin::kSub) return static_cast<T>(a - b);
  if constexpr (B == Bin::kMul) return static_cast<T>(a * b);
  if constexpr (B == Bin::kDiv || B == Bin::kMod || B == Bin::kFMod) {
    // INT_MIN / -1 traps on x86; -1 is answered without dividing (wrapping, as ORT does).
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
      if (b == T(-1)) return B == Bin::kDiv ? static_cast<T>(T(0) - a) : T(0);
  }
  if constexpr (B == Bin::kDiv) return static_cast<T>(a / b);  // ints: divisors checked first
  if constexpr (B == Bin::kPow) {
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(std::pow(a, b));
    else return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  }
  if constexpr (B == Bin::kMod) {  // integer mod takes the divisor's sign, as Python's %
    if constexpr (std::is_floating_point_v<T>) {  // fmod=0 on floats: Python's sign rule too
      T m = std::fmod(a, b);
      return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
    } else {
      T m = a % b;
      return static_cast<T>((m != 0 && ((m < 0) != (b < 0))) ? m + b : m);
    }
  }
  if constexpr (B == Bin::kFMod) {
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(std::fmod(a, b));
    else return static_cast<T>(a % b);  // C truncation: the dividend's sign
  }
  if constexpr (B == Bin::kMin) return a < b || (std::is_floating_point_v<T> && a != a) ? a : b;
  if constexpr (B == Bin::kMax) return a > b || (std::is_floating_point_v<T> && a != a) ? a : b;
  if constexpr (B == Bin::kPRelu) return a < T(0) ? static_cast<T>(a * b) : a;
  if constexpr (B == Bin::kEq) return a == b;
  if constexpr (B == Bin::kLt) return a < b;
  if constexpr (B == Bin::kGt) return a > b;
  if constexpr (B == Bin::kLe) return a <= b;
  if constexpr (B == Bin::kGe) return a >= b;
  if constexpr (B == Bin::kAnd) return a && b;
  if constexpr (B == Bin::kOr) return a || b;
  if constexpr (B == Bin::kXor) return a != b;
}

// One output = a (op) b, with broadcasting. O is the output element type.
template <Bin B, typename T, typename O>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& y, ThreadPool& pool) {
  BroadcastLoop<2> loop({&a.shape, &b.shape}, y.shape);
  const T* pa = a.ptr<T>();
  const T* pb = b.ptr<T>();
  O* py = y.ptr<O>();
  const bool sa = loop.inner_stride(0) != 0, sb = loop.inner_stride(1) != 0;
  loop.run(pool, [&](int64_t o, const std::array<int64_t, 2>& off, int64_t n) {
    const T* x = pa + off[0];
    const T* z = pb + off[1];
    O* out = py + o;
    // Specialised inner loops so the common cases vectorise.
    if (sa && sb) for (int64_t i = 0; i < n; ++i) out[i] = apply<B, T>(x[i], z[i]);
    else if (sa) { T c = z[0]; for (int64_t i = 0; i < n; ++i) out[i] = apply<B, T>(x[i], c); }
    else if (sb) { T c = x[0]; for (int64_t i = 0; i < n; ++i) out[i] = apply<B, T>(c, z[i]); }
    else { O v = apply<B, T>(x[0], z[0]); for (int64_t i = 0; i < n; ++i) out[i] = v; }
  });
}

// Integer division by zero would kill the process (SIGFPE): refuse it up front.
template <typename T>
void check_int_divisor(const Tensor& b, const Node& node) {
  if constexpr (std::is_integral_v<T>) {
    const T* p = b.ptr<T>();
    for (int64_t i = 0, n = b.numel(); i < n; ++i)
      RUNNX_CHECK(p[i] != 0, kInvalidArgument, node.label(), ": integer division by zero");
  }
}

template <Bin B>
void binary_dispatch(const Tensor& a, const Tensor& b, Tensor& y, ThreadPool& pool, const Node& node) {
  if constexpr (is_logic(B)) {
    binary_loop<B, bool, bool>(a, b, y, pool);
  } else {
    auto go = [&](auto tag) {
      using T = decltype(tag);
      if constexpr (B == Bin::kDiv || B == Bin::kMod || B == Bin::kFMod) check_int_divisor<T>(b, node);
      if constexpr (is_compare(B)) binary_loop<B, T, bool>(a, b, y, pool);
      else binary_loop<B, T, T>(a, b, y, pool);
    };
    if constexpr (B == Bin::kEq)
      if (a.dtype == DType::kBool) return go(bool{});
    dispatch_numeric(a.dtype, node, go);
  }
}

// Pow with a scalar float exponent of 2, 3, 0.5 or 1 (LayerNorm written out uses Pow(x, 2)):
// multiplications instead of pow(). Returns false when not applicable.
inline bool pow_scalar_fast_path(const Tensor& a, const Tensor& b, Tensor& y, ThreadPool& pool) {
  if (a.dtype != DType::kF32 || b.numel() != 1 || y.shape != a.shape) return false;
  const float e = *b.ptr<float>();
  if (e != 2.f && e != 3.f && e != 0.5f && e != 1.f) return false;
  const float* x = a.ptr<float>();
  float* out = y.ptr<float>();
  pool.parallel_for(a.numel(), 16384, [&](int64_t s, int64_t t) {
    if (e == 2.f) for (int64_t i = s; i < t; ++i) out[i] = x[i] * x[i];
    else if (e == 3.f) for (int64_t i = s; i < t; ++i) out[i] = x[i] * x[i] * x[i];
    else if (e == 0.5f) for (int64_t i = s; i < t; ++i) out[i] = std::sqrt(x[i]);
    else for (int64_t i = s; i < t; ++i) out[i] = x[i];
  });
  return true;
}

template <Bin B>
class BinaryKernel : public Kernel {
 public:
  explicit BinaryKernel(const KernelInfo& info) {
    if constexpr (B == Bin::kMod) fmod_ = info.node.get_int("fmod", 0) != 0;
  }
  int inplace_input() const override { return is_compare(B) ? -1 : 0; }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    // Pow may take an exponent of another type (Pow(float, int64)): convert it to the base's.
    Tensor converted;
    const Tensor* bp = &ctx.required_input(1);
    if (B == Bin::kPow && bp->dtype != a.dtype) {
      converted = convert(*bp, a.dtype, node);
      bp = &converted;
    }
    const Tensor& b = *bp;
    RUNNX_CHECK(a.dtype == b.dtype, kInvalidArgument, node.label(), ": input types differ: ",
                dtype_name(a.dtype), " and ", dtype_name(b.dtype));
    if (is_logic(B))
      RUNNX_CHECK(a.dtype == DType::kBool, kInvalidArgument, node.label(), ": expects bool inputs, got ",
                  dtype_name(a.dtype));
    Shape out = broadcast_shapes({&a.shape, &b.shape}, node);
    if constexpr (B == Bin::kPRelu) {
      // The slope broadcasts to X (unidirectional).
      RUNNX_CHECK(out == a.shape, kInvalidArgument, node.label(), ": slope ", shape_str(b.shape),
                  " does not broadcast to X ", shape_str(a.shape));
    }
    Tensor& y = ctx.allocate_output(0, is_compare(B) || is_logic(B) ? DType::kBool : a.dtype, out);
    if (y.numel() == 0) return;
    if constexpr (B == Bin::kPow) {
      if (pow_scalar_fast_path(a, b, y, ctx.pool())) return;
    }
    if (B == Bin::kMod && fmod_) return binary_dispatch<Bin::kFMod>(a, b, y, ctx.pool(), node);
    binary_dispatch<B>(a, b, y, ctx.pool(), node);
  }

 private:
  static Tensor convert(const Tensor& t, DType to, const Node& node) {
    Tensor r = Tensor::empty(to, t.shape);
    std::vector<double> v = tensor_to_f64(t);
    dispatch_numeric(to, node, [&](auto tag) {
      using T = decltype(tag);
      for (size_t i = 0; i < v.size(); ++i) r.ptr<T>()[i] = static_cast<T>(v[i]);
    });
    return r;
  }
  bool fmod_ = false;
};

// Min, Max, Sum, Mean over any number of broadcasting inputs, folded pairwise.
template <Bin B, bool kMean = false>
class VariadicKernel : public Kernel {
 public:
  explicit VariadicKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    RUNNX_CHECK(ctx.num_inputs() >= 1, kInvalidModel, node.label(), ": needs at least one input");
    std::vector<const Shape*> shapes;
    for (int i = 0; i < ctx.num_inputs(); ++i) shapes.push_back(&ctx.required_input(i).shape);
    Shape out = broadcast_shapes(shapes, node);
    const Tensor& first = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, first.dtype, out);
    if (y.numel() == 0) return;
    // Broadcast input 0 into y (acc = x0 + 0 ... expressed as a Max/Add with itself would be
    // wrong), then fold the others in place.
    Tensor zero = Tensor::empty(first.dtype, {});
    dispatch_numeric(first.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      *zero.ptr<T>() = T(0);
      binary_loop<Bin::kAdd, T, T>(first, zero, y, ctx.pool());
      for (int i = 1; i < ctx.num_inputs(); ++i) {
        const Tensor& x = ctx.required_input(i);
        RUNNX_CHECK(x.dtype == first.dtype, kInvalidArgument, node.label(), ": input types differ");
        binary_loop<B, T, T>(y, x, y, ctx.pool());
      }
      if constexpr (kMean) {
        T* p = y.ptr<T>();
        T n = static_cast<T>(ctx.num_inputs());
        for (int64_t i = 0, m = y.numel(); i < m; ++i) p[i] = static_cast<T>(p[i] / n);
      }
    });
  }
};

// Where(cond, x, y): any element type, dispatched on element size.
class WhereKernel : public Kernel {
 public:
  explicit WhereKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& c = ctx.required_input(0);
    const Tensor& x = ctx.required_input(1);
    const Tensor& z = ctx.required_input(2);
    RUNNX_CHECK(c.dtype == DType::kBool, kInvalidArgument, node.label(), ": condition must be bool, got ",
                dtype_name(c.dtype));
    RUNNX_CHECK(x.dtype == z.dtype, kInvalidArgument, node.label(), ": X and Y types differ: ",
                dtype_name(x.dtype), " and ", dtype_name(z.dtype));
    Shape out = broadcast_shapes({&c.shape, &x.shape, &z.shape}, node);
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    BroadcastLoop<3> loop({&c.shape, &x.shape, &z.shape}, out);
    auto go = [&](auto tag) {
      using T = decltype(tag);
      const bool* pc = c.ptr<bool>();
      const T* px = x.ptr<T>();
      const T* pz = z.ptr<T>();
      T* py = y.ptr<T>();
      const int64_t s0 = loop.inner_stride(0), s1 = loop.inner_stride(1), s2 = loop.inner_stride(2);
      loop.run(ctx.pool(), [&](int64_t o, const std::array<int64_t, 3>& off, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          py[o + i] = pc[off[0] + i * s0] ? px[off[1] + i * s1] : pz[off[2] + i * s2];
      });
    };
    switch (dtype_size(x.dtype)) {
      case 1: return go(uint8_t{});
      case 2: return go(uint16_t{});
      case 4: return go(uint32_t{});
      case 8: return go(uint64_t{});
      default: fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype), " is not supported");
    }
  }
};

}  // namespace

void register_binary_ops(OpRegistry& r) {
  r.add("Add", "", 7, factory<BinaryKernel<Bin::kAdd>>());
  r.add("Sub", "", 7, factory<BinaryKernel<Bin::kSub>>());
  r.add("Mul", "", 7, factory<BinaryKernel<Bin::kMul>>());
  r.add("Div", "", 7, factory<BinaryKernel<Bin::kDiv>>());
  r.add("Pow", "", 7, factory<BinaryKernel<Bin::kPow>>());
  r.add("Mod", "", 10, factory<BinaryKernel<Bin::kMod>>());
  r.add("PRelu", "", 7, factory<BinaryKernel<Bin::kPRelu>>());
  r.add("Equal", "", 7, factory<BinaryKernel<Bin::kEq>>());
  r.add("Less", "", 7, factory<BinaryKernel<Bin::kLt>>());
  r.add("Greater", "", 7, factory<BinaryKernel<Bin::kGt>>());
  r.add("LessOrEqual", "", 12, factory<BinaryKernel<Bin::kLe>>());
  r.add("GreaterOrEqual", "", 12, factory<BinaryKernel<Bin::kGe>>());
  r.add("And", "", 7, factory<BinaryKernel<Bin::kAnd>>());
  r.add("Or", "", 7, factory<BinaryKernel<Bin::kOr>>());
  r.add("Xor", "", 7, factory<BinaryKernel<Bin::kXor>>());
  r.add("Min", "", 8, factory<VariadicKernel<Bin::kMin>>());
  r.add("Max", "", 8, factory<VariadicKernel<Bin::kMax>>());
  r.add("Sum", "", 8, factory<VariadicKernel<Bin::kAdd>>());
  r.add("Mean", "", 8, factory<VariadicKernel<Bin::kAdd, true>>());
  r.add("Where", "", 9, factory<WhereKernel>());
}

}  // namespace runnx
