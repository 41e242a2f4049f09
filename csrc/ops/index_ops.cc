// Index-producing and rearranging ops: NonZero, OneHot, Compress, EyeLike, DepthToSpace,
// SpaceToDepth, ReverseSequence. The rearranging ones are a reshape plus a transpose, done as
// one strided copy on raw bytes so every fixed-size dtype works.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/half.h"
#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// Whether each element of x is non-zero (as a float for float types, so -0.0 is zero).
std::vector<uint8_t> nonzero_mask(const Tensor& x, const Node& node) {
  const int64_t n = x.numel();
  std::vector<uint8_t> m(n);
  if (x.dtype == DType::kF16 || x.dtype == DType::kBF16) {
    const uint16_t* p = x.ptr<uint16_t>();
    for (int64_t i = 0; i < n; ++i) m[i] = (p[i] & 0x7fff) != 0;
    return m;
  }
  dispatch_all(x.dtype, node, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.ptr<T>();
    for (int64_t i = 0; i < n; ++i) m[i] = p[i] != T(0);
  });
  return m;
}

// NonZero: int64 [rank, count] of the coordinates of non-zero elements, row-major order. A 0-d
// input gives [0, count] (the ONNX rule, unlike numpy).
class NonZeroKernel : public Kernel {
 public:
  explicit NonZeroKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const std::vector<uint8_t> m = nonzero_mask(x, ctx.node());
    int64_t count = 0;
    for (uint8_t v : m) count += v;
    const int64_t r = x.rank();
    Tensor& y = ctx.allocate_output(0, DType::kI64, {r, count});
    if (r == 0 || count == 0) return;
    int64_t* out = y.ptr<int64_t>();
    std::vector<int64_t> pos(r, 0);
    int64_t j = 0;
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i]) {
        for (int64_t d = 0; d < r; ++d) out[d * count + j] = pos[d];
        ++j;
      }
      for (int64_t d = r - 1; d >= 0; --d) {
        if (++pos[d] < x.shape[d]) break;
        pos[d] = 0;
      }
    }
  }
};

// A scalar input (0-d or one element) of any numeric type, as a double.
double scalar_value(const Tensor& t, const char* what, const Node& node) {
  RUNNX_CHECK(t.numel() == 1, kInvalidArgument, node.label(), ": ", what,
              " must hold exactly one value, got shape ", shape_str(t.shape));
  if (t.dtype == DType::kF16) return half_to_float(*t.ptr<uint16_t>());
  return tensor_to_f64(t)[0];
}

// OneHot(indices, depth, values=[off, on]): indices of any numeric type (floats truncate),
// negative ones wrap once, out-of-range ones give an all-off row.
class OneHotKernel : public Kernel {
 public:
  explicit OneHotKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", -1)) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& it = ctx.required_input(0);
    const double depth_f = scalar_value(ctx.required_input(1), "depth", node);
    const Tensor& vals = ctx.required_input(2);
    RUNNX_CHECK(vals.numel() == 2, kInvalidArgument, node.label(),
                ": values must hold [off_value, on_value], got shape ", shape_str(vals.shape));
    RUNNX_CHECK(depth_f >= 1 && depth_f < 9.0e15, kInvalidArgument, node.label(), ": depth ",
                depth_f, " must be positive");
    const int64_t depth = static_cast<int64_t>(depth_f);
    const int64_t r = it.rank();
    const int64_t axis = normalize_axis(axis_, r + 1, node);
    std::vector<double> fi;
    if (dtype_is_float(it.dtype) && it.dtype != DType::kF16 && it.dtype != DType::kBF16) {
      fi = tensor_to_f64(it);
    } else {
      RUNNX_CHECK(!dtype_is_float(it.dtype), kUnsupportedOp, node.label(), ": indices type ",
                  dtype_name(it.dtype), " is not supported");
      dispatch_numeric(it.dtype, node, [&](auto tag) {
        using T = decltype(tag);
        fi.resize(it.numel());
        for (int64_t i = 0; i < it.numel(); ++i) fi[i] = static_cast<double>(it.ptr<T>()[i]);
      });
    }
    Shape out(it.shape.begin(), it.shape.begin() + axis);
    out.push_back(depth);
    out.insert(out.end(), it.shape.begin() + axis, it.shape.end());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d) (d < axis ? outer : inner) *= it.shape[d];
    const size_t es = element_size(vals.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, vals.dtype, out);
    if (y.numel() == 0) return;
    const auto* off = static_cast<const uint8_t*>(vals.data);
    fill_elements(y.data, es, y.numel(), off, ctx.pool());
    by_size(es, [&](auto u) {
      using U = decltype(u);
      U on;
      std::memcpy(&on, off + es, es);
      U* Y = static_cast<U*>(y.data);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          double v = std::trunc(fi[o * inner + i]);
          if (v < 0) v += static_cast<double>(depth);
          if (!(v >= 0 && v < static_cast<double>(depth))) continue;  // also NaN
          Y[(o * depth + static_cast<int64_t>(v)) * inner + i] = on;
        }
    });
  }

 private:
  int64_t axis_;
};

// Compress(input, condition) along `axis`, or over the flattened input without it. A condition
// shorter than the axis keeps nothing past its end; a longer one may only be false there.
class CompressKernel : public Kernel {
 public:
  explicit CompressKernel(const KernelInfo& info)
      : has_axis_(info.node.has_attr("axis")), axis_(info.node.get_int("axis", 0)) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& c = ctx.required_input(1);
    RUNNX_CHECK(c.rank() == 1 && c.dtype == DType::kBool, kInvalidArgument, node.label(),
                ": condition must be a 1-D bool tensor, got ", dtype_name(c.dtype), " ",
                shape_str(c.shape));
    Shape xs = has_axis_ ? x.shape : Shape{x.numel()};
    const int64_t axis = has_axis_ ? normalize_axis(axis_, x.rank(), node) : 0;
    const int64_t dim = xs[axis];
    const uint8_t* cond = c.ptr<uint8_t>();
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < c.numel(); ++i) {
      if (!cond[i]) continue;
      RUNNX_CHECK(i < dim, kInvalidArgument, node.label(), ": condition selects index ", i,
                  " past the end of an axis of size ", dim);
      keep.push_back(i);
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(xs.size()); ++d)
      if (d != axis) (d < axis ? outer : inner) *= xs[d];
    Shape out = xs;
    out[axis] = static_cast<int64_t>(keep.size());
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    const int64_t nk = static_cast<int64_t>(keep.size());
    const auto* S = static_cast<const uint8_t*>(x.data);
    auto* D = static_cast<uint8_t*>(y.data);
    const size_t row = inner * es;
    ctx.pool().parallel_for(outer * nk, rows_grain(inner), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        std::memcpy(D + k * row, S + ((k / nk) * dim + keep[k % nk]) * row, row);
    });
  }

 private:
  bool has_axis_;
  int64_t axis_;
};

// EyeLike: a 2-D tensor shaped like the input with ones on diagonal k, of `dtype` (default: the
// input's type).
class EyeLikeKernel : public Kernel {
 public:
  explicit EyeLikeKernel(const KernelInfo& info)
      : k_(info.node.get_int("k", 0)), dtype_(info.node.get_int("dtype", -1)) {
    RUNNX_CHECK(dtype_ < 0 || dtype_valid(static_cast<int32_t>(dtype_)), kInvalidModel,
                info.node.label(), ": dtype ", dtype_, " is not supported");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() == 2, kInvalidArgument, node.label(), ": input must be 2-D, got ",
                shape_str(x.shape));
    const DType dt = dtype_ < 0 ? x.dtype : static_cast<DType>(dtype_);
    const size_t es = element_size(dt, node.label());
    Tensor& y = ctx.allocate_output(0, dt, x.shape);
    if (y.numel() == 0) return;
    uint64_t zero = 0, one = 0;
    cast_scalar(1.0, dt, &one, node.label());
    fill_elements(y.data, es, y.numel(), &zero, ctx.pool());
    const int64_t rows = x.shape[0], cols = x.shape[1];
    if (k_ >= cols || k_ <= -rows) return;  // no diagonal inside (also keeps -k_ in range)
    auto* D = static_cast<uint8_t*>(y.data);
    for (int64_t i = std::max<int64_t>(0, -k_); i < rows; ++i) {
      if (k_ > 0 && i > cols - 1 - k_) break;  // written this way so i + k_ cannot overflow
      const int64_t j = i + k_;
      if (j >= cols) break;
      std::memcpy(D + (i * cols + j) * es, &one, es);
    }
  }

 private:
  int64_t k_;
  int64_t dtype_;
};

// DepthToSpace / SpaceToDepth as a 6-D strided copy. `depth_to_space` picks the direction, `crd`
// the channel order (CRD: channel, row, column; DCR: row, column, channel).
class BlockKernel : public Kernel {
 public:
  BlockKernel(const KernelInfo& info, bool depth_to_space)
      : d2s_(depth_to_space), b_(info.node.get_int("blocksize", 0)) {
    const Node& n = info.node;
    RUNNX_CHECK(n.has_attr("blocksize") && b_ > 0 && b_ < (int64_t{1} << 31), kInvalidModel,
                n.label(), ": blocksize must be a positive integer");
    const std::string mode = n.get_string("mode", "DCR");
    RUNNX_CHECK(mode == "DCR" || mode == "CRD", kInvalidModel, n.label(), ": mode '", mode,
                "' must be DCR or CRD");
    crd_ = mode == "CRD";
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() == 4, kInvalidArgument, node.label(), ": input must be 4-D, got ",
                shape_str(x.shape));
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], b = b_;
    Shape out, six;                  // output shape; output viewed as 6-D
    std::vector<int64_t> src(6);     // input strides for each of the 6 output dims
    if (d2s_) {
      RUNNX_CHECK(C % (b * b) == 0, kInvalidArgument, node.label(), ": channels ", C,
                  " are not a multiple of blocksize^2 = ", b * b);
      const int64_t c = C / (b * b);
      out = {N, c, H * b, W * b};
      six = {N, c, H, b, W, b};
      // Input viewed as [N, b, b, c, H, W] (DCR) or [N, c, b, b, H, W] (CRD); channel index
      // splits as (row, col, ch) or (ch, row, col).
      const int64_t sH = W, sC = H * W;
      const int64_t s_ch = crd_ ? b * b * sC : sC, s_row = crd_ ? b * sC : b * c * sC,
                    s_col = crd_ ? sC : c * sC;
      src = {C * H * W, s_ch, sH, s_row, 1, s_col};
    } else {
      RUNNX_CHECK(H % b == 0 && W % b == 0, kInvalidArgument, node.label(), ": spatial dims ",
                  H, "x", W, " are not multiples of blocksize ", b);
      const int64_t h = H / b, w = W / b;
      out = {N, C * b * b, h, w};
      // Input viewed as [N, C, h, b, w, b]; output as [N, b, b, C, h, w] (DCR) or
      // [N, C, b, b, h, w] (CRD).
      const int64_t sC = H * W, s_h = b * W, s_row = W, s_w = b, s_col = 1;
      if (crd_) {
        six = {N, C, b, b, h, w};
        src = {C * H * W, sC, s_row, s_col, s_h, s_w};
      } else {
        six = {N, b, b, C, h, w};
        src = {C * H * W, s_row, s_col, sC, s_h, s_w};
      }
    }
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    copy_strided(y.data, x.data, es, six, contiguous_strides(six), src, ctx.pool());
  }

 private:
  bool d2s_;
  int64_t b_;
  bool crd_ = false;
};

class DepthToSpaceKernel : public BlockKernel {
 public:
  explicit DepthToSpaceKernel(const KernelInfo& info) : BlockKernel(info, true) {}
};
class SpaceToDepthKernel : public BlockKernel {
 public:
  explicit SpaceToDepthKernel(const KernelInfo& info) : BlockKernel(info, false) {}
};

// ReverseSequence: for each batch entry b, the first sequence_lens[b] steps along time_axis are
// reversed; the rest are copied.
class ReverseSequenceKernel : public Kernel {
 public:
  explicit ReverseSequenceKernel(const KernelInfo& info)
      : batch_axis_(info.node.get_int("batch_axis", 1)),
        time_axis_(info.node.get_int("time_axis", 0)) {
    RUNNX_CHECK((batch_axis_ == 0 && time_axis_ == 1) || (batch_axis_ == 1 && time_axis_ == 0),
                kInvalidModel, info.node.label(), ": batch_axis and time_axis must be 0 and 1");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(), ": input must have rank >= 2, got ",
                shape_str(x.shape));
    const int64_t B = x.shape[batch_axis_], T = x.shape[time_axis_];
    const std::vector<int64_t> lens = read_ints(&ctx.required_input(1));
    RUNNX_CHECK(static_cast<int64_t>(lens.size()) == B, kInvalidArgument, node.label(),
                ": sequence_lens has ", lens.size(), " entries for a batch of ", B);
    for (int64_t l : lens)
      RUNNX_CHECK(l >= 0 && l <= T, kInvalidArgument, node.label(), ": sequence length ", l,
                  " is out of range [0, ", T, "]");
    int64_t inner = 1;
    for (int64_t d = 2; d < x.rank(); ++d) inner *= x.shape[d];
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (y.numel() == 0) return;
    const int64_t sb = (batch_axis_ == 0 ? T : 1) * inner, st = (time_axis_ == 0 ? B : 1) * inner;
    const auto* S = static_cast<const uint8_t*>(x.data);
    auto* D = static_cast<uint8_t*>(y.data);
    ctx.pool().parallel_for(B * T, rows_grain(inner), [&](int64_t b0, int64_t e0) {
      for (int64_t k = b0; k < e0; ++k) {
        const int64_t b = k / T, t = k % T;
        const int64_t ts = t < lens[b] ? lens[b] - 1 - t : t;
        std::memcpy(D + (b * sb + t * st) * es, S + (b * sb + ts * st) * es, inner * es);
      }
    });
  }

 private:
  int64_t batch_axis_, time_axis_;
};

}  // namespace

void register_index_ops(OpRegistry& r) {
  r.add("NonZero", "", 9, factory<NonZeroKernel>());
  r.add("OneHot", "", 9, factory<OneHotKernel>());
  r.add("Compress", "", 9, factory<CompressKernel>());
  r.add("EyeLike", "", 9, factory<EyeLikeKernel>());
  r.add("DepthToSpace", "", 1, factory<DepthToSpaceKernel>());
  r.add("SpaceToDepth", "", 1, factory<SpaceToDepthKernel>());
  r.add("ReverseSequence", "", 10, factory<ReverseSequenceKernel>());
}

}  // namespace runnx
