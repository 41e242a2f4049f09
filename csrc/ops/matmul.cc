// MatMul (numpy semantics) and Gemm, both on the shared gemm<T> in kernels/cpu/gemm.h.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"
#include "ops/matmul_util.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// Batches smaller than this many multiply-adds are not worth a thread each.
constexpr int64_t kBatchGrainMacs = int64_t{1} << 16;

class MatMulKernel : public Kernel {
 public:
  explicit MatMulKernel(const KernelInfo& info) : const_b_(info, /*trans_b=*/false) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    RUNNX_CHECK(a.dtype == b.dtype, kInvalidArgument, node.label(), ": A is ", dtype_name(a.dtype),
                " but B is ", dtype_name(b.dtype));
    RUNNX_CHECK(a.rank() >= 1 && b.rank() >= 1, kInvalidArgument, node.label(),
                ": operands must have rank >= 1, got shapes ", shape_str(a.shape), " and ",
                shape_str(b.shape));
    // numpy: a 1-D A is a row vector, a 1-D B a column vector; the added dim is dropped again.
    Shape as = a.shape, bs = b.shape;
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
    RUNNX_CHECK(bs[bs.size() - 2] == K, kInvalidArgument, node.label(),
                ": inner dimensions differ: A has shape ", shape_str(a.shape), ", B has shape ",
                shape_str(b.shape));
    const Shape abatch(as.begin(), as.end() - 2), bbatch(bs.begin(), bs.end() - 2);
    Shape out = broadcast_shapes({&abatch, &bbatch}, node);
    const Shape batch = out;
    if (a.rank() > 1) out.push_back(M);
    if (b.rank() > 1) out.push_back(N);
    Tensor& y = ctx.allocate_output(0, a.dtype, out);
    if (y.numel() == 0) return;
    if (const_b_.is(b) && a.dtype == DType::kF32) {
      // All of A's batches form one tall matrix against the packed weight.
      gemm_f32_packed(shape_numel(batch) * M, a.ptr<float>(), K, const_b_.packed, y.ptr<float>(), N, 0.f,
                      GemmEpilogue{}, &ctx.pool());
      return;
    }
    dispatch_gemm_type(a.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      run_typed<T>(a.ptr<T>(), b.ptr<T>(), y.ptr<T>(), abatch, bbatch, batch, M, N, K, ctx.pool());
    });
  }

  std::string describe() const override {
    return std::string("sgemm ") + gemm_f32_isa() + (const_b_.packed.empty() ? "" : ", B packed at load");
  }

 private:
  ConstantB const_b_;

  template <typename T>
  static void run_typed(const T* A, const T* B, T* Y, const Shape& abatch, const Shape& bbatch,
                        const Shape& batch, int64_t M, int64_t N, int64_t K, ThreadPool& pool) {
    const int64_t nb = shape_numel(batch);
    // An unbatched B (the usual Linear layer): all of A's batches form one tall matrix.
    if (shape_numel(bbatch) == 1 && shape_numel(abatch) == nb) {
      gemm<T>(nb * M, N, K, A, K, B, N, Y, N, T(0), &pool);
      return;
    }
    // Offsets of each batch's matrices (broadcast batch dims read the same matrix again).
    const std::vector<int64_t> sa = broadcast_strides(abatch, batch);
    const std::vector<int64_t> sb = broadcast_strides(bbatch, batch);
    std::vector<int64_t> offa(nb), offb(nb), idx(batch.size(), 0);
    for (int64_t t = 0; t < nb; ++t) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d < batch.size(); ++d) {
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
      }
      offa[t] = oa * M * K;
      offb[t] = ob * K * N;
      for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
    auto one = [&](int64_t t, ThreadPool* p) {
      gemm<T>(M, N, K, A + offa[t], K, B + offb[t], N, Y + t * M * N, N, T(0), p);
    };
    if (nb >= pool.num_threads() && pool.num_threads() > 1) {
      // Enough batches to keep every thread busy: one whole GEMM per task.
      const int64_t grain = std::max<int64_t>(1, kBatchGrainMacs / std::max<int64_t>(1, M * N * K));
      pool.parallel_for(nb, grain, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) one(t, nullptr);
      });
    } else {
      for (int64_t t = 0; t < nb; ++t) one(t, &pool);
    }
  }
};

// Y = alpha * op(A) * op(B) + beta * C, C broadcast to [M, N].
class GemmKernel : public Kernel {
 public:
  explicit GemmKernel(const KernelInfo& info) {
    const Node& node = info.node;
    alpha_ = node.get_float("alpha", 1.0f);
    beta_ = node.get_float("beta", 1.0f);
    trans_a_ = node.get_int("transA", 0) != 0;
    trans_b_ = node.get_int("transB", 0) != 0;
    const_b_ = ConstantB(info, trans_b_);
    // Any other constant transposed B (a Linear layer's weight) is transposed once here, not per run.
    const Tensor* b = info.constant_input(1);
    if (const_b_.packed.empty() && trans_b_ && b && b->rank() == 2 && b->numel() > 0) {
      dispatch_gemm_type(b->dtype, node, [&](auto tag) {
        using T = decltype(tag);
        Tensor t = Tensor::empty(b->dtype, {b->shape[1], b->shape[0]});
        transpose_matrix<T>(b->shape[0], b->shape[1], b->ptr<T>(), b->shape[1], t.ptr<T>());
        transposed_b_ = std::move(t);
      });
      transposed_from_ = b->data;
      if (info.release_constant) info.release_constant(1);  // only the transposed copy is read
    }
  }

  std::string describe() const override {
    return std::string("sgemm ") + gemm_f32_isa() + (const_b_.packed.empty() ? "" : ", B packed at load");
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* c = ctx.input(2);
    RUNNX_CHECK(a.rank() == 2 && b.rank() == 2, kInvalidArgument, node.label(),
                ": A and B must be 2-D, got shapes ", shape_str(a.shape), " and ",
                shape_str(b.shape));
    RUNNX_CHECK(a.dtype == b.dtype && (!c || c->dtype == a.dtype), kInvalidArgument, node.label(),
                ": A, B and C must have one element type, got ", dtype_name(a.dtype), ", ",
                dtype_name(b.dtype), (c ? ", " + dtype_name(c->dtype) : std::string()));
    const int64_t M = trans_a_ ? a.shape[1] : a.shape[0];
    const int64_t K = trans_a_ ? a.shape[0] : a.shape[1];
    const int64_t Kb = trans_b_ ? b.shape[1] : b.shape[0];
    const int64_t N = trans_b_ ? b.shape[0] : b.shape[1];
    RUNNX_CHECK(K == Kb, kInvalidArgument, node.label(), ": inner dimensions differ: A ",
                shape_str(a.shape), (trans_a_ ? " (transposed)" : ""), ", B ", shape_str(b.shape),
                (trans_b_ ? " (transposed)" : ""));
    int64_t cm = 1, cn = 1;
    if (c) {
      RUNNX_CHECK(c->rank() <= 2, kInvalidArgument, node.label(), ": C must have rank <= 2, got ",
                  shape_str(c->shape));
      if (c->rank() == 2) cm = c->shape[0];
      if (c->rank() >= 1) cn = c->shape.back();
      RUNNX_CHECK((cm == 1 || cm == M) && (cn == 1 || cn == N), kInvalidArgument, node.label(),
                  ": C of shape ", shape_str(c->shape), " does not broadcast to [", M, ",", N, "]");
      if (cm == 0 || cn == 0)
        RUNNX_CHECK(M * N == 0, kInvalidArgument, node.label(), ": C is empty");
    }
    Tensor& y = ctx.allocate_output(0, a.dtype, {M, N});
    if (y.numel() == 0) return;
    dispatch_gemm_type(a.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      run_typed<T>(a, b, c, y.ptr<T>(), M, N, K, cm, cn, ctx.pool());
    });
  }

 private:
  template <typename T>
  void run_typed(const Tensor& a, const Tensor& b, const Tensor* c, T* Y, int64_t M, int64_t N,
                 int64_t K, int64_t cm, int64_t cn, ThreadPool& pool) const {
    std::vector<T> ta, tb;
    const T* A = a.ptr<T>();
    if (trans_a_) {
      ta.resize(static_cast<size_t>(M * K));
      transpose_matrix<T>(K, M, A, M, ta.data());
      A = ta.data();
    }
    if constexpr (std::is_same_v<T, float>) {
      if (const_b_.is(b) && !trans_a_ && alpha_ == 1.0f) {
        // The packed weight, with C (one value per column, beta 1) as the epilogue's bias.
        const bool c_is_bias = c && beta_ == 1.0f && cm == 1 && cn == N && N > 1;
        if (!c || beta_ == 0.0f || c_is_bias) {
          GemmEpilogue epi;
          if (c && c_is_bias) epi.bias = c->ptr<float>();
          gemm_f32_packed(M, a.ptr<float>(), K, const_b_.packed, Y, N, 0.f, epi, &pool);
          return;
        }
      }
    }
    const T* B = b.ptr<T>();
    if (trans_b_) {
      if (transposed_b_.data && b.data == transposed_from_) {
        B = transposed_b_.ptr<T>();
      } else {
        tb.resize(static_cast<size_t>(K * N));
        transpose_matrix<T>(N, K, B, K, tb.data());
        B = tb.data();
      }
    }
    const T alpha = static_cast<T>(alpha_), beta = static_cast<T>(beta_);
    const bool use_c = c && beta_ != 0.0f;
    const T* C = use_c ? c->ptr<T>() : nullptr;
    auto c_at = [&](int64_t i, int64_t j) { return C[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)]; };
    if (use_c && alpha_ == 1.0f) {
      // Y starts as beta*C and the GEMM accumulates onto it: one pass over Y.
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) Y[i * N + j] = beta * c_at(i, j);
      gemm<T>(M, N, K, A, K, B, N, Y, N, T(1), &pool);
      return;
    }
    gemm<T>(M, N, K, A, K, B, N, Y, N, T(0), &pool);
    if (use_c) {
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) Y[i * N + j] = alpha * Y[i * N + j] + beta * c_at(i, j);
    } else if (alpha_ != 1.0f) {
      for (int64_t i = 0; i < M * N; ++i) Y[i] *= alpha;
    }
  }

  float alpha_ = 1, beta_ = 1;
  bool trans_a_ = false, trans_b_ = false;
  ConstantB const_b_;                      // the constant float B, packed for the microkernel
  Tensor transposed_b_;                    // transpose of another constant B, when transB
  const void* transposed_from_ = nullptr;  // the constant it was made from
};

}  // namespace

void register_einsum_ops(OpRegistry& r);  // ops/einsum.cc: the same family, its own file

void register_matmul_ops(OpRegistry& r) {
  r.add("MatMul", "", 7, factory<MatMulKernel>());
  r.add("Gemm", "", 7, factory<GemmKernel>());
  register_einsum_ops(r);
}

}  // namespace runnx
