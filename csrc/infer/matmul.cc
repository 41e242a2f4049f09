// Inference for the matrix products: MatMul (numpy: 1-D operands promoted and their added dim
// dropped, batch dims broadcast), Gemm (transA/transB, C broadcast to [M, N]) and Einsum (the
// equation's labels, implicit output, ellipsis, size-1 broadcasting as the kernel does).
#include <algorithm>
#include <array>
#include <string>

#include "infer/infer.h"

namespace runnx {

namespace {

// Numpy broadcast of two dim lists (right-aligned); fails on two different constants.
std::vector<SymDim> broadcast_lists(const InferContext& ctx, const std::vector<SymDim>& a,
                                    const std::vector<SymDim>& b, const char* what) {
  const size_t r = std::max(a.size(), b.size());
  std::vector<SymDim> out(r, SymDim(1));
  for (size_t k = 0; k < r; ++k) {
    SymDim x = k + a.size() >= r ? a[k + a.size() - r] : SymDim(1);
    SymDim y = k + b.size() >= r ? b[k + b.size() - r] : SymDim(1);
    if (x.is_const() && y.is_const() && x.value() != y.value() && x.value() != 1 && y.value() != 1)
      ctx.fail(what, " cannot broadcast: ", dims_str(a), " and ", dims_str(b));
    out[k] = broadcast(x, y);
  }
  return out;
}

void matmul(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1});
  const std::vector<SymDim>* a = ctx.dims(0);
  const std::vector<SymDim>* b = ctx.dims(1);
  if (a) ctx.check(!a->empty(), "operands must have rank >= 1, A is a scalar");
  if (b) ctx.check(!b->empty(), "operands must have rank >= 1, B is a scalar");
  if (!a || !b) return ctx.set_output_unknown_shape(0, t);
  std::vector<SymDim> as = *a, bs = *b;
  if (as.size() == 1) as.insert(as.begin(), SymDim(1));
  if (bs.size() == 1) bs.push_back(SymDim(1));
  const SymDim &K = as.back(), &Kb = bs[bs.size() - 2];
  if (K.is_const() && Kb.is_const() && K.value() != Kb.value())
    ctx.fail("inner dimensions differ: A has shape ", dims_str(*a), ", B has shape ", dims_str(*b));
  std::vector<SymDim> out = broadcast_lists(ctx, std::vector<SymDim>(as.begin(), as.end() - 2),
                                            std::vector<SymDim>(bs.begin(), bs.end() - 2), "batch dims");
  if (a->size() > 1) out.push_back(as[as.size() - 2]);
  if (b->size() > 1) out.push_back(bs.back());
  ctx.set_output(0, t, std::move(out));
}

void gemm(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1, 2});
  const bool ta = ctx.node().get_int("transA", 0) != 0, tb = ctx.node().get_int("transB", 0) != 0;
  const std::vector<SymDim>* a = ctx.dims(0);
  const std::vector<SymDim>* b = ctx.dims(1);
  const std::vector<SymDim>* c = ctx.has_input(2) ? ctx.dims(2) : nullptr;
  ctx.check(!a || a->size() == 2, "A and B must be 2-D, A has shape ", a ? dims_str(*a) : "");
  ctx.check(!b || b->size() == 2, "A and B must be 2-D, B has shape ", b ? dims_str(*b) : "");
  SymDim M = a ? (*a)[ta ? 1 : 0] : SymDim::unknown();
  const SymDim K = a ? (*a)[ta ? 0 : 1] : SymDim::unknown();
  const SymDim Kb = b ? (*b)[tb ? 1 : 0] : SymDim::unknown();
  SymDim N = b ? (*b)[tb ? 0 : 1] : SymDim::unknown();
  if (K.is_const() && Kb.is_const() && K.value() != Kb.value())
    ctx.fail("inner dimensions differ: A ", dims_str(*a), (ta ? " (transposed)" : ""), ", B ", dims_str(*b),
             (tb ? " (transposed)" : ""));
  if (c) {
    ctx.check(c->size() <= 2, "C must have rank <= 2, got ", dims_str(*c));
    // C's dims are 1 or the output's: a constant other than 1 fixes a symbolic M or N.
    auto fit = [&](SymDim& out, const SymDim& cd) {
      if (!cd.is_const() || cd.value() == 1) return;
      if (out.is_const() && out.value() != cd.value())
        ctx.fail("C of shape ", dims_str(*c), " does not broadcast to [", M.str(), ",", N.str(), "]");
      out = cd;
    };
    if (c->size() == 2) fit(M, (*c)[0]);
    if (!c->empty()) fit(N, c->back());
  }
  ctx.set_output(0, t, {M, N});
}

// ------------------------------------------------------------------------------------- Einsum

// Labels: 'a'..'z' -> 0..25, 'A'..'Z' -> 26..51; kEllipsis marks "..." in a term.
constexpr int kEllipsis = 52;

struct Term {
  std::vector<int> labels;
  bool ellipsis = false;
};

int letter_id(char c) { return c >= 'a' && c <= 'z' ? c - 'a' : (c >= 'A' && c <= 'Z' ? c - 'A' + 26 : -1); }
char letter_char(int id) { return id < 26 ? static_cast<char>('a' + id) : static_cast<char>('A' + id - 26); }

bool parse_term(const std::string& s, Term& t) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "...") == 0) {
      if (t.ellipsis) return false;
      t.ellipsis = true;
      t.labels.push_back(kEllipsis);
      i += 2;
      continue;
    }
    int id = letter_id(s[i]);
    if (id < 0) return false;
    t.labels.push_back(id);
  }
  return true;
}

// Parses the equation; false when it is malformed (the kernel reports that at load).
bool parse_equation(const std::string& raw, size_t n_inputs, std::vector<Term>& terms, Term& out) {
  std::string eq;
  for (char c : raw)
    if (c != ' ') eq += c;
  if (eq.empty()) return false;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.emplace_back();
    if (!parse_term(lhs.substr(start, comma - start), terms.back())) return false;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != n_inputs) return false;
  std::array<int, kEllipsis> count{};
  bool any_ell = false;
  for (const Term& t : terms)
    for (int l : t.labels) l == kEllipsis ? void(any_ell = true) : void(++count[l]);
  if (arrow != std::string::npos) {
    if (!parse_term(eq.substr(arrow + 2), out)) return false;
    std::array<int, kEllipsis> seen{};
    for (int l : out.labels)
      if (l != kEllipsis && (++seen[l] > 1 || count[l] == 0)) return false;
    return true;
  }
  // Implicit output: the ellipsis dims, then the labels seen once, in ASCII order.
  if (any_ell) {
    out.labels.push_back(kEllipsis);
    out.ellipsis = true;
  }
  std::vector<int> once;
  for (int l = 0; l < kEllipsis; ++l)
    if (count[l] == 1) once.push_back(l);
  std::sort(once.begin(), once.end(), [](int x, int y) { return letter_char(x) < letter_char(y); });
  out.labels.insert(out.labels.end(), once.begin(), once.end());
  return true;
}

void einsum(InferContext& ctx) {
  const int n = ctx.num_inputs();
  std::vector<int> all;
  for (int i = 0; i < n; ++i) all.push_back(i);
  const DType t = same_dtype(ctx, all);
  std::vector<Term> terms;
  Term out;
  if (!parse_equation(ctx.node().get_string("equation", ""), n, terms, out))
    return ctx.set_output_unknown_shape(0, t);
  // How many dims "..." stands for: the most any operand gives it (-1: not known at load).
  int64_t n_ell = 0;
  for (int i = 0; i < n; ++i) {
    const std::vector<SymDim>* d = ctx.dims(i);
    const int64_t named = static_cast<int64_t>(terms[i].labels.size()) - (terms[i].ellipsis ? 1 : 0);
    if (!d) {
      if (terms[i].ellipsis) n_ell = -1;
      continue;
    }
    const int64_t e = static_cast<int64_t>(d->size()) - named;
    if (terms[i].ellipsis ? e < 0 : e != 0)
      ctx.fail("equation '", ctx.node().get_string("equation", ""), "' does not match an operand of rank ",
               d->size());
    if (terms[i].ellipsis && n_ell >= 0) n_ell = std::max(n_ell, e);
  }
  if (out.ellipsis && n_ell < 0) return ctx.set_output_unknown_shape(0, t);
  // Each label's size; operands of unknown rank add nothing (their ellipsis dims stay unknown).
  const int64_t ell_count = std::max<int64_t>(n_ell, 0);
  std::vector<SymDim> size(kEllipsis + ell_count, SymDim::unknown());
  std::vector<bool> set(size.size(), false), unseen(size.size(), false);
  for (int i = 0; i < n; ++i) {
    const std::vector<SymDim>* d = ctx.dims(i);
    if (!d) {  // its sizes may broadcast a 1 (or a symbol that is 1) of the other operands
      for (int l : terms[i].labels)
        if (l != kEllipsis) unseen[l] = true;
      if (terms[i].ellipsis)
        for (int64_t k = 0; k < n_ell; ++k) unseen[kEllipsis + k] = true;
      continue;
    }
    const int64_t e = static_cast<int64_t>(d->size()) - static_cast<int64_t>(terms[i].labels.size()) +
                      (terms[i].ellipsis ? 1 : 0);
    size_t pos = 0;
    for (int l : terms[i].labels) {
      std::vector<int> ids;
      if (l != kEllipsis) {
        ids.push_back(l);
      } else if (n_ell >= 0) {
        for (int64_t k = 0; k < e; ++k) ids.push_back(static_cast<int>(kEllipsis + n_ell - e + k));
      } else {
        pos += static_cast<size_t>(e);  // not aligned at load: those sizes stay unknown
        continue;
      }
      for (int id : ids) {
        const SymDim& v = (*d)[pos++];
        SymDim& s = size[id];
        if (!set[id]) {
          s = v;
          set[id] = true;
          continue;
        }
        if (s.is_const() && v.is_const() && s.value() != v.value() && s.value() != 1 && v.value() != 1)
          ctx.fail("equation '", ctx.node().get_string("equation", ""), "': sizes ", s.value(), " and ", v.value(),
                   " of one label disagree");
        s = broadcast(s, v);
      }
    }
  }
  auto dim = [&](int id) {
    const bool fixed = set[id] && size[id].is_const() && size[id].value() != 1;
    return unseen[id] && !fixed ? SymDim::unknown() : size[id];
  };
  std::vector<SymDim> dims;
  for (int l : out.labels) {
    if (l != kEllipsis) {
      dims.push_back(dim(l));
      continue;
    }
    for (int64_t k = 0; k < n_ell; ++k) dims.push_back(dim(static_cast<int>(kEllipsis + k)));
  }
  ctx.set_output(0, t, std::move(dims));
}

}  // namespace

void register_matmul_infer(InferRegistry& r) {
  r.add("MatMul", "", matmul);
  r.add("Gemm", "", gemm);
  r.add("Einsum", "", einsum);
}

}  // namespace runnx
