// ConvTranspose: per image and group, col = W_g^T * X_g on the shared GEMM (one col row per output
// channel and kernel tap), then col2im adds each row into the output at the strided, dilated,
// padded positions. Tiles of input rows bound the col buffer for large images.
#include <algorithm>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

constexpr int64_t kColBudget = int64_t{1} << 20;  // elements of one col tile
constexpr int64_t kParallelMacs = int64_t{1} << 17;

int64_t floor_div2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// Geometry with the roles of in/out as in Conv: `in` is X's spatial shape, `out` Y's.
struct TGeom {
  Geom3 g;
  std::vector<int64_t> out;  // Y's spatial shape (unpadded to 3)
};

// Adds col rows (for output channel plane y, input rows [r0, r1)) into y at the scatter positions.
template <typename T>
void col2im_plane(const T* col, int64_t ld, const Geom3& g, int64_t r0, int64_t r1, T* y) {
  // Here g.in is Y's (the "image") spatial shape and g.out is X's: the roles are those of the
  // Conv that this op is the transpose of.
  const int64_t IW = g.out[2];
  int64_t q = 0;
  for (int64_t kd = 0; kd < g.k[0]; ++kd)
    for (int64_t kh = 0; kh < g.k[1]; ++kh)
      for (int64_t kw = 0; kw < g.k[2]; ++kw, ++q) {
        const T* src = col + q * ld;
        const int64_t woff = kw * g.d[2] - g.pb[2];
        int64_t lo, hi;
        valid_range(g.in[2], IW, g.s[2], woff, lo, hi);
        for (int64_t r = r0; r < r1; ++r, src += IW) {
          const int64_t od = (r / g.out[1]) * g.s[0] - g.pb[0] + kd * g.d[0];
          const int64_t oh = (r % g.out[1]) * g.s[1] - g.pb[1] + kh * g.d[1];
          if (od < 0 || od >= g.in[0] || oh < 0 || oh >= g.in[1]) continue;
          T* dst = y + (od * g.in[1] + oh) * g.in[2] + woff;
          if (g.s[2] == 1) {
            for (int64_t iw = lo; iw < hi; ++iw) dst[iw] += src[iw];
          } else {
            for (int64_t iw = lo; iw < hi; ++iw) dst[iw * g.s[2]] += src[iw];
          }
        }
      }
}

class ConvTransposeKernel : public Kernel {
 public:
  explicit ConvTransposeKernel(const KernelInfo& info) : attrs_(info.node) {
    const Node& node = info.node;
    group_ = node.get_int("group", 1);
    RUNNX_CHECK(group_ >= 1, kInvalidModel, node.label(), ": group must be >= 1, got ", group_);
    output_padding_ = node.get_ints("output_padding");
    output_shape_ = node.get_ints("output_shape");
    for (int64_t v : output_padding_)
      RUNNX_CHECK(v >= 0, kInvalidModel, node.label(), ": output_padding must be non-negative");
    // A constant W is transposed per group once here: [C/G, M/G*KS] -> [M/G*KS, C/G].
    const Tensor* w = info.constant_input(1);
    if (w && w->rank() >= 3 && w->shape[0] % group_ == 0 && w->numel() > 0 &&
        (w->dtype == DType::kF32 || w->dtype == DType::kF64)) {
      packed_w_ = Tensor::empty(w->dtype, w->shape);
      packed_from_ = w->data;
      if (w->dtype == DType::kF32)
        pack_w<float>(*w, packed_w_.ptr<float>());
      else
        pack_w<double>(*w, packed_w_.ptr<double>());
    }
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    const Tensor* b = ctx.input(2);
    RUNNX_CHECK(
        x.rank() >= 3 && w.rank() == x.rank(), kInvalidArgument, node.label(),
        ": X must be [N, C, spatial...] and W [C, M/group, kernel...] of the same rank, got ",
        shape_str(x.shape), " and ", shape_str(w.shape));
    RUNNX_CHECK(x.dtype == w.dtype && (!b || b->dtype == x.dtype), kInvalidArgument, node.label(),
                ": X, W and B must have one element type");
    const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[1] * group_;
    RUNNX_CHECK(w.shape[0] == C && C % group_ == 0, kInvalidArgument, node.label(), ": X ",
                shape_str(x.shape), " and W ", shape_str(w.shape), " do not fit group=", group_);
    RUNNX_CHECK(!b || (b->rank() == 1 && b->shape[0] == M), kInvalidArgument, node.label(),
                ": B must have shape [", M, "], got ", shape_str(b ? b->shape : Shape{}));
    const Geom3 g = geometry(node, x, w);
    Shape out = {N, M};
    const size_t n = x.shape.size() - 2;
    for (size_t i = 0; i < n; ++i) out.push_back(g.in[3 - n + i]);
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    switch (x.dtype) {
      case DType::kF32:
        return run_typed<float>(x, w, b, g, y, ctx.pool());
      case DType::kF64:
        return run_typed<double>(x, w, b, g, y, ctx.pool());
      default:
        fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype),
             " is not supported");
    }
  }

 private:
  template <typename T>
  void pack_w(const Tensor& w, T* dst) const {
    const int64_t Cg = w.shape[0] / group_, cols = w.numel() / w.shape[0];  // Mg * KS
    for (int64_t gi = 0; gi < group_; ++gi)
      transpose_matrix<T>(Cg, cols, w.ptr<T>() + gi * Cg * cols, cols, dst + gi * Cg * cols);
  }

  // Conv-style geometry of the forward conv: g.in = Y's spatial shape, g.out = X's.
  Geom3 geometry(const Node& node, const Tensor& x, const Tensor& w) const {
    const int64_t n = x.rank() - 2;
    attrs_.check_rank(node, n);
    RUNNX_CHECK(n <= 3, kUnsupportedOp, node.label(), ": ", n,
                " spatial dims are not supported (1 to 3 are)");
    RUNNX_CHECK(output_padding_.empty() || static_cast<int64_t>(output_padding_.size()) == n,
                kInvalidModel, node.label(), ": output_padding must have ", n, " values");
    std::vector<int64_t> oshape = output_shape_;
    if (static_cast<int64_t>(oshape.size()) == n + 2)
      oshape.erase(oshape.begin(), oshape.begin() + 2);
    RUNNX_CHECK(oshape.empty() || static_cast<int64_t>(oshape.size()) == n, kInvalidModel,
                node.label(), ": output_shape must have ", n, " values");
    if (!attrs_.kernel.empty())
      RUNNX_CHECK(std::equal(attrs_.kernel.begin(), attrs_.kernel.end(), w.shape.begin() + 2),
                  kInvalidArgument, node.label(), ": kernel_shape attribute does not match W ",
                  shape_str(w.shape));
    Geom3 g;
    const int64_t o = 3 - n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t in = x.shape[2 + i], k = w.shape[2 + i];
      const int64_t s = attrs_.strides.empty() ? 1 : attrs_.strides[i];
      const int64_t d = attrs_.dilations.empty() ? 1 : attrs_.dilations[i];
      const int64_t op = output_padding_.empty() ? 0 : output_padding_[i];
      const int64_t natural = s * (in - 1) + op + (k - 1) * d + 1;
      int64_t pb = 0, pe = 0, out;
      const bool same =
          attrs_.auto_pad == AutoPad::kSameUpper || attrs_.auto_pad == AutoPad::kSameLower;
      if (!oshape.empty() || same) {
        // Pads follow from the requested size; SAME_UPPER puts the odd one at the end.
        out = oshape.empty() ? in * s : oshape[i];
        const int64_t total = natural - out;
        if (attrs_.auto_pad == AutoPad::kSameUpper) {
          pb = floor_div2(total);
          pe = total - pb;
        } else {
          pe = floor_div2(total);
          pb = total - pe;
        }
      } else {
        if (attrs_.auto_pad == AutoPad::kNotSet && !attrs_.pads.empty()) {
          pb = attrs_.pads[i];
          pe = attrs_.pads[i + n];
        }
        out = natural - pb - pe;
      }
      RUNNX_CHECK(out >= 0, kInvalidArgument, node.label(), ": spatial dim ", i,
                  " gets a negative output size ", out);
      g.in[o + i] = out;
      g.out[o + i] = in;
      g.k[o + i] = k;
      g.s[o + i] = s;
      g.d[o + i] = d;
      g.pb[o + i] = pb;
      g.pe[o + i] = pe;
    }
    return g;
  }

  template <typename T>
  void run_typed(const Tensor& xt, const Tensor& wt, const Tensor* bt, const Geom3& g, Tensor& yt,
                 ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], G = group_, Cg = C / G, Mg = wt.shape[1];
    const int64_t M = Mg * G, KS = g.k_size(), R = Mg * KS;  // col rows per group
    const int64_t IP = g.out_size(), OP = g.in_size();       // X and Y plane sizes
    const T* x = xt.ptr<T>();
    const T* bias = bt ? bt->ptr<T>() : nullptr;
    T* y = yt.ptr<T>();
    std::vector<T> wbuf;
    const T* wt_packed;
    if (packed_w_.data && wt.data == packed_from_) {
      wt_packed = packed_w_.ptr<T>();
    } else {
      wbuf.resize(static_cast<size_t>(wt.numel()));
      if (!wbuf.empty()) pack_w<T>(wt, wbuf.data());
      wt_packed = wbuf.data();
    }
    const int64_t rows = g.out[0] * g.out[1], IW = g.out[2];
    const int64_t tile = std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, R * IW), 1,
                                             std::max<int64_t>(rows, 1));
    const bool big = N * M * OP * Cg >= kParallelMacs || N * Cg * IP * R >= kParallelMacs;
    const bool outer = big && N * G >= pool.num_threads() && pool.num_threads() > 1;
    auto body = [&](int64_t t0, int64_t t1) {
      std::vector<T> col(static_cast<size_t>(R * std::min(tile, rows) * IW));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / G, gi = t % G;
        T* yg = y + (n * M + gi * Mg) * OP;
        for (int64_t m = 0; m < Mg; ++m)
          std::fill(yg + m * OP, yg + (m + 1) * OP, bias ? bias[gi * Mg + m] : T(0));
        const T* xg = x + (n * C + gi * Cg) * IP;
        for (int64_t r0 = 0; r0 < rows; r0 += tile) {
          const int64_t r1 = std::min(rows, r0 + tile), cols = (r1 - r0) * IW;
          gemm<T>(R, cols, Cg, wt_packed + gi * Cg * R, Cg, xg + r0 * IW, IP, col.data(), cols,
                  T(0), outer ? nullptr : &pool);
          auto planes = [&](int64_t m0, int64_t m1) {
            for (int64_t m = m0; m < m1; ++m)
              col2im_plane<T>(col.data() + m * KS * cols, cols, g, r0, r1, yg + m * OP);
          };
          if (outer)
            planes(0, Mg);
          else
            pool.parallel_for(Mg, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, KS * cols)),
                              planes);
        }
      }
    };
    if (outer)
      pool.parallel_for(N * G, 1, body);
    else
      body(0, N * G);
  }

  WindowAttrs attrs_;
  int64_t group_ = 1;
  std::vector<int64_t> output_padding_, output_shape_;
  Tensor packed_w_;
  const void* packed_from_ = nullptr;
};

}  // namespace

void register_conv_transpose_ops(OpRegistry& r) {
  r.add("ConvTranspose", "", 7, factory<ConvTransposeKernel>());
}

}  // namespace runnx
