// Einsum. Two-operand equations whose labels are batch / kept / contracted (matmul-like: "bij,bjk->
// bik", "bhqd,bhkd->bhqk", "i,j->ij", "i,i->") are permuted into a batched GEMM. Everything else
// (one operand: transposes, reductions, diagonals; three or more operands; repeated labels;
// broadcast size-1 dims) runs as a direct loop over the labels.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"
#include "ops/matmul_util.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// Labels are ints: 'a'..'z' -> 0..25, 'A'..'Z' -> 26..51, the dims an ellipsis stands for -> 52+.
constexpr int kEllipsisBase = 52;

struct Term {
  std::vector<int> labels;  // letters, in order; kEllipsisBase marks where "..." sits
  bool ellipsis = false;
};

int letter_id(char c) {
  return c >= 'a' && c <= 'z' ? c - 'a' : (c >= 'A' && c <= 'Z' ? c - 'A' + 26 : -1);
}
// ASCII order for the implicit output ("A" < "a"), as numpy sorts.
char letter_char(int id) {
  return id < 26 ? static_cast<char>('a' + id) : static_cast<char>('A' + id - 26);
}

Term parse_term(const std::string& s, const Node& node, const std::string& eq) {
  Term t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "...") == 0) {
      RUNNX_CHECK(!t.ellipsis, kInvalidModel, node.label(), ": equation '", eq,
                  "' has two ellipses in one term");
      t.ellipsis = true;
      t.labels.push_back(kEllipsisBase);
      i += 2;
      continue;
    }
    int id = letter_id(s[i]);
    RUNNX_CHECK(id >= 0, kInvalidModel, node.label(), ": equation '", eq,
                "' has an invalid character '", s[i], "'");
    t.labels.push_back(id);
  }
  return t;
}

// Expands "..." into ellipsis labels for an operand of `rank` dims (right-aligned to `n_ell`).
std::vector<int> expand(const Term& t, int64_t rank, int n_ell, const Node& node,
                        const std::string& eq) {
  const int64_t named = static_cast<int64_t>(t.labels.size()) - (t.ellipsis ? 1 : 0);
  const int64_t e = rank - named;
  RUNNX_CHECK(t.ellipsis ? e >= 0 : e == 0, kInvalidArgument, node.label(), ": equation '", eq,
              "' does not match an operand of rank ", rank);
  std::vector<int> out;
  for (int l : t.labels) {
    if (l != kEllipsisBase) {
      out.push_back(l);
      continue;
    }
    for (int64_t k = 0; k < e; ++k)
      out.push_back(kEllipsisBase + n_ell - static_cast<int>(e) + static_cast<int>(k));
  }
  return out;
}

// Copies src (shape `shape`) into dst laid out with dims in order `perm`.
template <typename T>
void permute(const T* src, const Shape& shape, const std::vector<int>& perm, T* dst) {
  const size_t r = perm.size();
  const std::vector<int64_t> st = contiguous_strides(shape);
  Shape dshape(r);
  std::vector<int64_t> dst_st(r);
  for (size_t d = 0; d < r; ++d) {
    dshape[d] = shape[perm[d]];
    dst_st[d] = st[perm[d]];
  }
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  if (r == 0) {
    dst[0] = src[0];
    return;
  }
  const int64_t inner = dshape[r - 1], istride = dst_st[r - 1];
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < n; o += inner) {
    int64_t off = 0;
    for (size_t d = 0; d + 1 < r; ++d) off += idx[d] * dst_st[d];
    for (int64_t k = 0; k < inner; ++k) dst[o + k] = src[off + k * istride];
    for (int64_t d = static_cast<int64_t>(r) - 2; d >= 0; --d) {
      if (++idx[d] < dshape[d]) break;
      idx[d] = 0;
    }
  }
}

bool is_identity(const std::vector<int>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int>(i)) return false;
  return true;
}

class EinsumKernel : public Kernel {
 public:
  explicit EinsumKernel(const KernelInfo& info) {
    const Node& node = info.node;
    for (char c : node.get_string("equation", ""))
      if (c != ' ') eq_ += c;
    RUNNX_CHECK(!eq_.empty(), kInvalidModel, node.label(), ": the equation attribute is missing");
    const size_t arrow = eq_.find("->");
    const std::string lhs = eq_.substr(0, arrow);
    size_t start = 0;
    for (;;) {
      size_t comma = lhs.find(',', start);
      terms_.push_back(parse_term(lhs.substr(start, comma - start), node, eq_));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    RUNNX_CHECK(terms_.size() == node.inputs.size(), kInvalidModel, node.label(), ": equation '",
                eq_, "' has ", terms_.size(), " operand(s) but the node has ", node.inputs.size(),
                " input(s)");
    if (arrow != std::string::npos) {
      out_ = parse_term(eq_.substr(arrow + 2), node, eq_);
      std::array<int, kEllipsisBase> seen{};
      for (int l : out_.labels) {
        if (l == kEllipsisBase) continue;
        RUNNX_CHECK(++seen[l] == 1, kInvalidModel, node.label(), ": equation '", eq_,
                    "' repeats output label '", letter_char(l), "'");
        bool found = false;
        for (const Term& t : terms_) found |= std::count(t.labels.begin(), t.labels.end(), l) > 0;
        RUNNX_CHECK(found, kInvalidModel, node.label(), ": equation '", eq_, "': output label '",
                    letter_char(l), "' does not appear in any input");
      }
    } else {
      // Implicit output: the ellipsis dims, then labels seen exactly once, in ASCII order.
      std::array<int, kEllipsisBase> count{};
      bool any_ell = false;
      for (const Term& t : terms_)
        for (int l : t.labels) {
          if (l == kEllipsisBase)
            any_ell = true;
          else
            ++count[l];
        }
      if (any_ell) {
        out_.labels.push_back(kEllipsisBase);
        out_.ellipsis = true;
      }
      std::vector<int> once;
      for (int l = 0; l < kEllipsisBase; ++l)
        if (count[l] == 1) once.push_back(l);
      std::sort(once.begin(), once.end(),
                [](int x, int y) { return letter_char(x) < letter_char(y); });
      out_.labels.insert(out_.labels.end(), once.begin(), once.end());
    }
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const int n_ops = static_cast<int>(terms_.size());
    std::vector<const Tensor*> x(n_ops);
    int n_ell = 0;
    for (int i = 0; i < n_ops; ++i) {
      x[i] = &ctx.required_input(i);
      RUNNX_CHECK(x[i]->dtype == x[0]->dtype, kInvalidArgument, node.label(),
                  ": all operands must have one element type");
      if (terms_[i].ellipsis)
        n_ell = std::max<int>(n_ell, static_cast<int>(x[i]->rank() + 1 - terms_[i].labels.size()));
    }
    // Labels of each operand's dims, and each label's size (1 broadcasts, numpy-style).
    std::vector<std::vector<int>> labels(n_ops);
    std::vector<int64_t> size(kEllipsisBase + n_ell, -1);
    for (int i = 0; i < n_ops; ++i) {
      labels[i] = expand(terms_[i], x[i]->rank(), n_ell, node, eq_);
      for (size_t d = 0; d < labels[i].size(); ++d) {
        int64_t& s = size[labels[i][d]];
        const int64_t v = x[i]->shape[d];
        RUNNX_CHECK(s < 0 || s == v || s == 1 || v == 1, kInvalidArgument, node.label(),
                    ": equation '", eq_, "': sizes ", s, " and ", v, " of one label disagree");
        if (s < 0 || s == 1) s = v;
      }
    }
    std::vector<int> out_labels;
    for (int l : out_.labels) {
      if (l != kEllipsisBase) {
        out_labels.push_back(l);
        continue;
      }
      for (int k = 0; k < n_ell; ++k) out_labels.push_back(kEllipsisBase + k);
    }
    Shape out_shape;
    for (int l : out_labels) {
      RUNNX_CHECK(size[l] >= 0, kInvalidArgument, node.label(), ": equation '", eq_,
                  "': an output ellipsis has no matching input dims");
      out_shape.push_back(size[l]);
    }
    Tensor& y = ctx.allocate_output(0, x[0]->dtype, out_shape);
    dispatch_gemm_type(x[0]->dtype, node, [&](auto tag) {
      using T = decltype(tag);
      if (n_ops == 2 && try_gemm<T>(*x[0], *x[1], labels, size, out_labels, y, ctx.pool())) return;
      run_loop<T>(x, labels, size, out_labels, y, ctx.pool());
    });
  }

 private:
  // The matmul-like form: returns false (nothing written) when the equation does not fit it.
  template <typename T>
  bool try_gemm(const Tensor& a, const Tensor& b, const std::vector<std::vector<int>>& labels,
                const std::vector<int64_t>& size, const std::vector<int>& out_labels, Tensor& y,
                ThreadPool& pool) const {
    const std::vector<int>& la = labels[0];
    const std::vector<int>& lb = labels[1];
    auto pos = [](const std::vector<int>& v, int l) {
      auto it = std::find(v.begin(), v.end(), l);
      return it == v.end() ? -1 : static_cast<int>(it - v.begin());
    };
    for (const auto* ls : {&la, &lb})
      for (size_t d = 0; d < ls->size(); ++d)
        if (pos(*ls, (*ls)[d]) != static_cast<int>(d)) return false;  // repeated label: diagonal
    for (size_t d = 0; d < la.size(); ++d)
      if (a.shape[d] != size[la[d]]) return false;  // broadcast dim
    for (size_t d = 0; d < lb.size(); ++d)
      if (b.shape[d] != size[lb[d]]) return false;
    std::vector<int> batch, akeep, bkeep, contr;
    for (int l : out_labels) {
      const bool ia = pos(la, l) >= 0, ib = pos(lb, l) >= 0;
      (ia && ib ? batch : ia ? akeep : bkeep).push_back(l);
    }
    for (int l : la) {
      if (pos(out_labels, l) >= 0) continue;
      if (pos(lb, l) < 0) return false;  // summed over A alone
      contr.push_back(l);
    }
    for (int l : lb)
      if (pos(out_labels, l) < 0 && pos(la, l) < 0) return false;  // summed over B alone
    auto prod = [&](const std::vector<int>& ls) {
      int64_t p = 1;
      for (int l : ls) p *= size[l];
      return p;
    };
    const int64_t nb = prod(batch), M = prod(akeep), N = prod(bkeep), K = prod(contr);
    if (y.numel() == 0) return true;
    // A as [batch, M, K], B as [batch, K, N]: permute (copy) only when the layout differs.
    auto arrange = [&](const Tensor& t, const std::vector<int>& ls, std::vector<int> order,
                       std::vector<T>& buf) -> const T* {
      std::vector<int> perm;
      for (int l : order) perm.push_back(pos(ls, l));
      if (is_identity(perm)) return t.ptr<T>();
      buf.resize(static_cast<size_t>(t.numel()));
      permute<T>(t.ptr<T>(), t.shape, perm, buf.data());
      return buf.data();
    };
    std::vector<int> order_a = batch, order_b = batch, order_y = batch;
    order_a.insert(order_a.end(), akeep.begin(), akeep.end());
    order_a.insert(order_a.end(), contr.begin(), contr.end());
    order_b.insert(order_b.end(), contr.begin(), contr.end());
    order_b.insert(order_b.end(), bkeep.begin(), bkeep.end());
    order_y.insert(order_y.end(), akeep.begin(), akeep.end());
    order_y.insert(order_y.end(), bkeep.begin(), bkeep.end());
    std::vector<T> abuf, bbuf, ybuf;
    const T* A = arrange(a, la, order_a, abuf);
    const T* B = arrange(b, lb, order_b, bbuf);
    std::vector<int> yperm;  // output dim d comes from product dim yperm[d]
    for (int l : out_labels) yperm.push_back(pos(order_y, l));
    const bool direct = is_identity(yperm);
    if (!direct) ybuf.resize(static_cast<size_t>(y.numel()));
    T* Y = direct ? y.ptr<T>() : ybuf.data();
    if (nb >= pool.num_threads() && pool.num_threads() > 1) {
      pool.parallel_for(nb, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          gemm<T>(M, N, K, A + t * M * K, K, B + t * K * N, N, Y + t * M * N, N, T(0), nullptr);
      });
    } else {
      for (int64_t t = 0; t < nb; ++t)
        gemm<T>(M, N, K, A + t * M * K, K, B + t * K * N, N, Y + t * M * N, N, T(0), &pool);
    }
    if (!direct) {
      Shape pshape;
      for (int l : order_y) pshape.push_back(size[l]);
      permute<T>(Y, pshape, yperm, y.ptr<T>());
    }
    return true;
  }

  // Direct loop: every output element sums the product of the operands over the summed labels.
  template <typename T>
  void run_loop(const std::vector<const Tensor*>& x, const std::vector<std::vector<int>>& labels,
                const std::vector<int64_t>& size, const std::vector<int>& out_labels, Tensor& y,
                ThreadPool& pool) const {
    // Integer sums wrap like numpy's: accumulate unsigned (signed overflow is undefined).
    using Acc = typename std::conditional_t<std::is_integral_v<T>, std::make_unsigned<T>,
                                            std::type_identity<T>>::type;
    const int n_ops = static_cast<int>(x.size());
    std::vector<int> all = out_labels, summed;
    for (const auto& ls : labels)
      for (int l : ls)
        if (std::find(all.begin(), all.end(), l) == all.end())
          all.push_back(l), summed.push_back(l);
    // strides[i][k]: how far operand i moves when label all[k] advances (0 when broadcast).
    std::vector<std::vector<int64_t>> strides(n_ops, std::vector<int64_t>(all.size(), 0));
    for (int i = 0; i < n_ops; ++i) {
      const std::vector<int64_t> cs = contiguous_strides(x[i]->shape);
      for (size_t d = 0; d < labels[i].size(); ++d) {
        if (x[i]->shape[d] == 1) continue;
        const size_t k = std::find(all.begin(), all.end(), labels[i][d]) - all.begin();
        strides[i][k] += cs[d];  // a repeated label walks the diagonal
      }
    }
    const int64_t n_out = y.numel();
    int64_t n_sum = 1;
    for (int l : summed) n_sum *= size[l];
    const size_t n_o = out_labels.size(), n_s = summed.size();
    T* Y = y.ptr<T>();
    auto body = [&](int64_t o0, int64_t o1) {
      std::vector<int64_t> base(n_ops), off(n_ops), idx(n_s);
      for (int64_t o = o0; o < o1; ++o) {
        int64_t rem = o;
        std::fill(base.begin(), base.end(), 0);
        for (int64_t d = static_cast<int64_t>(n_o) - 1; d >= 0; --d) {
          const int64_t v = rem % size[out_labels[d]];
          rem /= size[out_labels[d]];
          for (int i = 0; i < n_ops; ++i) base[i] += v * strides[i][d];
        }
        Acc acc = Acc(0);
        std::fill(idx.begin(), idx.end(), 0);
        off = base;
        for (int64_t s = 0; s < n_sum; ++s) {
          Acc p = static_cast<Acc>(x[0]->ptr<T>()[off[0]]);
          for (int i = 1; i < n_ops; ++i) p *= static_cast<Acc>(x[i]->ptr<T>()[off[i]]);
          acc += p;
          for (int64_t d = static_cast<int64_t>(n_s) - 1; d >= 0; --d) {
            for (int i = 0; i < n_ops; ++i) off[i] += strides[i][n_o + d];
            if (++idx[d] < size[summed[d]]) break;
            for (int i = 0; i < n_ops; ++i) off[i] -= strides[i][n_o + d] * size[summed[d]];
            idx[d] = 0;
          }
        }
        Y[o] = static_cast<T>(acc);
      }
    };
    pool.parallel_for(n_out, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n_sum * n_ops)),
                      body);
  }

  std::string eq_;
  std::vector<Term> terms_;
  Term out_;
};

}  // namespace

void register_einsum_ops(OpRegistry& r) { r.add("Einsum", "", 12, factory<EinsumKernel>()); }

}  // namespace runnx
