// Element-wise unary ops: out[i] = f(in[i]). Each op is a small functor; one templated kernel
// runs them all, so adding an op is a functor and a registration line.
#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {

namespace {

// Which element types an op accepts.
enum class TypeSet { kFloat, kSigned, kNumeric };

struct Params {
  float alpha = 0, beta = 0, gamma = 0, lambd = 0.5f, bias = 0;
  bool tanh_approx = false;
};

// erf for float, branch-free so loops over it vectorise. |x| < 0.5: Taylor series to x^13
// (truncation < 1e-10, keeps small inputs accurate in relative terms); otherwise Abramowitz &
// Stegun 7.1.26 (absolute error < 1.5e-7) on exp_f32. Both are computed and one is selected.
inline float erf_f32(float x) {
  const float a = std::fabs(x);
  const float x2 = x * x;
  float s = -1.0f / 75600;  // Taylor: 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
  s = s * x2 + 1.0f / 9360;
  s = s * x2 - 1.0f / 1320;
  s = s * x2 + 1.0f / 216;
  s = s * x2 - 1.0f / 42;
  s = s * x2 + 1.0f / 10;
  s = s * x2 - 1.0f / 3;
  s = s * x2 + 1.0f;
  const float small = 1.12837916709551257f * x * s;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float large = std::copysign(1.0f - p * t * exp_f32(-x2), x);
  const int32_t use_small = mask_of(a < 0.5f);
  return f32_from_bits(select_bits(use_small, f32_bits(small), f32_bits(large)));
}
inline float erf_t(float x) { return erf_f32(x); }
inline double erf_t(double x) { return std::erf(x); }

#define UNARY(NAME, SET, EXPR)                                      \
  struct NAME {                                                     \
    static constexpr TypeSet kTypes = TypeSet::SET;                 \
    Params p;                                                       \
    template <typename T>                                           \
    T operator()(T x) const {                                       \
      (void)p;                                                      \
      return static_cast<T>(EXPR);                                  \
    }                                                               \
  };

UNARY(Neg, kSigned, -x)
UNARY(Abs, kNumeric, (std::is_signed_v<T> ? (x < 0 ? -x : x) : x))
UNARY(Sign, kNumeric, (x > T(0)) - (x < T(0)))
UNARY(Relu, kSigned, x > T(0) ? x : T(0))
UNARY(Sqrt, kFloat, std::sqrt(x))
UNARY(Reciprocal, kFloat, T(1) / x)
UNARY(Exp, kFloat, exp_t(x))
UNARY(Log, kFloat, std::log(x))
UNARY(Erf, kFloat, erf_t(x))
UNARY(Tanh, kFloat, std::tanh(x))
UNARY(Sin, kFloat, std::sin(x))
UNARY(Cos, kFloat, std::cos(x))
UNARY(Tan, kFloat, std::tan(x))
UNARY(Asin, kFloat, std::asin(x))
UNARY(Acos, kFloat, std::acos(x))
UNARY(Atan, kFloat, std::atan(x))
UNARY(Sinh, kFloat, std::sinh(x))
UNARY(Cosh, kFloat, std::cosh(x))
UNARY(Asinh, kFloat, std::asinh(x))
UNARY(Acosh, kFloat, std::acosh(x))
UNARY(Atanh, kFloat, std::atanh(x))
UNARY(Shrink, kFloat, x < T(-p.lambd) ? x + T(p.bias) : (x > T(p.lambd) ? x - T(p.bias) : T(0)))
UNARY(Floor, kFloat, std::floor(x))
UNARY(Ceil, kFloat, std::ceil(x))
UNARY(Round, kFloat, std::nearbyint(x))  // ties to even under the default rounding mode
UNARY(Sigmoid, kFloat, x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x)))
UNARY(Softplus, kFloat, x > T(20) ? x : std::log1p(std::exp(x)))
UNARY(Softsign, kFloat, x / (T(1) + std::abs(x)))
UNARY(LeakyRelu, kFloat, x >= T(0) ? x : T(p.alpha) * x)
UNARY(Elu, kFloat, x >= T(0) ? x : T(p.alpha) * (std::exp(x) - T(1)))
UNARY(Selu, kFloat, T(p.gamma) * (x > T(0) ? x : T(p.alpha) * (std::exp(x) - T(1))))
UNARY(Celu, kFloat, std::max(T(0), x) + std::min(T(0), T(p.alpha) * (std::exp(x / T(p.alpha)) - T(1))))
UNARY(ThresholdedRelu, kFloat, x > T(p.alpha) ? x : T(0))
UNARY(HardSigmoid, kFloat, std::max(T(0), std::min(T(1), T(p.alpha) * x + T(p.beta))))
UNARY(HardSwish, kFloat, x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5))))
UNARY(Mish, kFloat, x * std::tanh(x > T(20) ? x : std::log1p(std::exp(x))))
// ONNX Gelu (opset 20): exact erf form, or the tanh approximation.
UNARY(Gelu, kFloat,
      p.tanh_approx
          ? T(0.5) * x * (T(1) + std::tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)))
          : T(0.5) * x * (T(1) + erf_t(x * T(0.7071067811865476))))
#undef UNARY

template <typename Op>
class UnaryKernel : public Kernel {
 public:
  explicit UnaryKernel(const KernelInfo& info) {
    const Node& n = info.node;
    op_.p.alpha = n.get_float("alpha", default_alpha());
    op_.p.beta = n.get_float("beta", 0.5f);
    op_.p.gamma = n.get_float("gamma", 1.05070102214813232421875f);
    op_.p.lambd = n.get_float("lambd", 0.5f);
    op_.p.bias = n.get_float("bias", 0.0f);
    if constexpr (std::is_same_v<Op, Selu>) op_.p.alpha = n.get_float("alpha", 1.67326319217681884765625f);
    if constexpr (std::is_same_v<Op, HardSigmoid>) op_.p.alpha = n.get_float("alpha", 0.2f);
    std::string approx = n.get_string("approximate", "none");
    RUNNX_CHECK(approx == "none" || approx == "tanh", kInvalidModel, n.label(), ": approximate must be "
                "'none' or 'tanh', got '", approx, "'");
    op_.p.tanh_approx = approx == "tanh";
  }

  int inplace_input() const override { return 0; }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    auto go = [&](auto tag) {
      using T = decltype(tag);
      const T* in = x.ptr<T>();
      T* out = y.ptr<T>();
      const Op op = op_;
      ctx.pool().parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = op(in[i]);
      });
    };
    switch (x.dtype) {
      case DType::kF32: return go(float{});
      case DType::kF64: return go(double{});
      default: break;
    }
    if constexpr (Op::kTypes != TypeSet::kFloat) {
      switch (x.dtype) {
        case DType::kI64: return go(int64_t{});
        case DType::kI32: return go(int32_t{});
        case DType::kI16: return go(int16_t{});
        case DType::kI8: return go(int8_t{});
        default: break;
      }
      if constexpr (Op::kTypes == TypeSet::kNumeric) {
        switch (x.dtype) {
          case DType::kU8: return go(uint8_t{});
          case DType::kU16: return go(uint16_t{});
          case DType::kU32: return go(uint32_t{});
          case DType::kU64: return go(uint64_t{});
          default: break;
        }
      }
    }
    fail(ErrorKind::kUnsupportedOp, ctx.node().label(), ": element type ", dtype_name(x.dtype),
         " is not supported");
  }

 private:
  static float default_alpha() {
    if constexpr (std::is_same_v<Op, LeakyRelu>) return 0.01f;
    return 1.0f;
  }
  Op op_;
};

// IsNaN / IsInf: float in, bool out.
class IsNaNKernel : public Kernel {
 public:
  explicit IsNaNKernel(const KernelInfo& info)
      : inf_(info.node.op_type == "IsInf"),
        neg_(info.node.get_int("detect_negative", 1) != 0),
        pos_(info.node.get_int("detect_positive", 1) != 0) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, DType::kBool, x.shape);
    bool* out = y.ptr<bool>();
    auto go = [&](auto tag) {
      using T = decltype(tag);
      const T* in = x.ptr<T>();
      for (int64_t i = 0, n = x.numel(); i < n; ++i) {
        T v = in[i];
        out[i] = inf_ ? ((pos_ && v == std::numeric_limits<T>::infinity()) ||
                         (neg_ && v == -std::numeric_limits<T>::infinity()))
                      : std::isnan(v);
      }
    };
    if (x.dtype == DType::kF32) return go(float{});
    if (x.dtype == DType::kF64) return go(double{});
    fail(ErrorKind::kUnsupportedOp, ctx.node().label(), ": element type ", dtype_name(x.dtype), " is not supported");
  }

 private:
  bool inf_, neg_, pos_;
};

// Clip: bounds are attributes before opset 11, optional scalar inputs from 11 on.
class ClipKernel : public Kernel {
 public:
  explicit ClipKernel(const KernelInfo& info) : attrs_(info.opset < 11) {
    lo_ = info.node.get_float("min", -std::numeric_limits<float>::infinity());
    hi_ = info.node.get_float("max", std::numeric_limits<float>::infinity());
  }
  int inplace_input() const override { return 0; }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    auto go = [&](auto tag) {
      using T = decltype(tag);
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if (attrs_) {
        lo = static_cast<T>(std::max<double>(lo_, static_cast<double>(lo)));
        hi = static_cast<T>(std::min<double>(hi_, static_cast<double>(hi)));
      } else {
        for (int k : {1, 2}) {
          const Tensor* b = ctx.input(k);
          if (!b) continue;
          RUNNX_CHECK(b->dtype == x.dtype && b->numel() == 1, kInvalidArgument, node.label(),
                      ": min/max must be scalars of the input's type");
          (k == 1 ? lo : hi) = *b->ptr<T>();
        }
      }
      const T* in = x.ptr<T>();
      T* out = y.ptr<T>();
      ctx.pool().parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = std::min(std::max(in[i], lo), hi);
      });
    };
    dispatch_numeric(x.dtype, node, go);
  }

 private:
  bool attrs_;
  float lo_, hi_;
};

// Not: bool in, bool out.
class NotKernel : public Kernel {
 public:
  explicit NotKernel(const KernelInfo&) {}
  int inplace_input() const override { return 0; }
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.dtype == DType::kBool, kInvalidArgument, ctx.node().label(), ": expects bool, got ",
                dtype_name(x.dtype));
    Tensor& y = ctx.allocate_output(0, DType::kBool, x.shape);
    const bool* in = x.ptr<bool>();
    bool* out = y.ptr<bool>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) out[i] = !in[i];
  }
};

}  // namespace

void register_unary_ops(OpRegistry& r) {
#define REG(NAME, SINCE) r.add(#NAME, "", SINCE, factory<UnaryKernel<NAME>>());
  REG(Neg, 6) REG(Abs, 6) REG(Sign, 9) REG(Relu, 6) REG(Sqrt, 6) REG(Reciprocal, 6) REG(Exp, 6)
  REG(Log, 6) REG(Erf, 9) REG(Tanh, 6) REG(Sin, 7) REG(Cos, 7) REG(Floor, 6) REG(Ceil, 6)
  REG(Round, 11) REG(Sigmoid, 6) REG(Softplus, 1) REG(Softsign, 1) REG(LeakyRelu, 6) REG(Elu, 6)
  REG(Selu, 6) REG(Celu, 12) REG(ThresholdedRelu, 10) REG(HardSigmoid, 6) REG(HardSwish, 14)
  REG(Mish, 18) REG(Gelu, 20) REG(Tan, 7) REG(Asin, 7) REG(Acos, 7) REG(Atan, 7) REG(Sinh, 9)
  REG(Cosh, 9) REG(Asinh, 9) REG(Acosh, 9) REG(Atanh, 9) REG(Shrink, 9)
#undef REG
  r.add("IsNaN", "", 9, factory<IsNaNKernel>());
  r.add("IsInf", "", 10, factory<IsNaNKernel>());
  r.add("Not", "", 1, factory<NotKernel>());
  r.add("Clip", "", 6, factory<ClipKernel>());
}

}  // namespace runnx
