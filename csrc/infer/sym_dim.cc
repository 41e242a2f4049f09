#include "infer/sym_dim.h"

#include <algorithm>
#include <atomic>
#include <climits>

namespace runnx {

struct SymDim::Expr {
  char op = 'c';  // c constant, s symbol, u unknown, or + - * / (floor) C (ceil) M (max) m (min) B (broadcast)
  int64_t value = 0;
  std::string name;
  std::shared_ptr<const Expr> a, b;
  std::string key;  // canonical text: equal keys, equal values
};

namespace {

// True when the expression cannot be negative for any binding of its (size) symbols.
bool non_negative(const SymDim::Expr& e) {
  switch (e.op) {
    case 'c': return e.value >= 0;
    case 's': return true;
    case '+': case '*': case 'm': case 'B': return non_negative(*e.a) && non_negative(*e.b);
    case 'M': return non_negative(*e.a) || non_negative(*e.b);
    case '/': case 'C': return non_negative(*e.a) && e.b->op == 'c' && e.b->value > 0;
    default: return false;
  }
}

int64_t floor_div_int(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

SymDim::SymDim(int64_t v) {
  auto e = std::make_shared<Expr>();
  e->value = v;
  e->key = std::to_string(v);
  e_ = std::move(e);
}

SymDim SymDim::symbol(const std::string& name) {
  auto e = std::make_shared<Expr>();
  e->op = 's';
  e->name = name;
  e->key = name;
  return SymDim(std::shared_ptr<const Expr>(std::move(e)));
}

SymDim SymDim::unknown() {
  static std::atomic<int64_t> next{0};
  auto e = std::make_shared<Expr>();
  e->op = 'u';
  e->key = "?" + std::to_string(next++);  // two unknowns are never the same dimension
  return SymDim(std::shared_ptr<const Expr>(std::move(e)));
}

std::vector<SymDim> SymDim::factors() const {
  if (e_->op != '*') return {*this};
  std::vector<SymDim> f = SymDim(e_->a).factors(), g = SymDim(e_->b).factors();
  f.insert(f.end(), g.begin(), g.end());
  return f;
}

const std::string* SymDim::symbol_name() const { return e_->op == 's' ? &e_->name : nullptr; }

bool SymDim::is_const() const { return e_->op == 'c'; }
bool SymDim::is_unknown() const { return e_->op == 'u'; }
int64_t SymDim::value() const { return e_->value; }
const std::string& SymDim::key() const { return e_->key; }

std::optional<int64_t> SymDim::eval(const SymBindings& bindings) const {
  const Expr& e = *e_;
  switch (e.op) {
    case 'c': return e.value;
    case 'u': return std::nullopt;
    case 's': {
      auto it = bindings.find(e.name);
      if (it == bindings.end()) return std::nullopt;
      return it->second;
    }
    default: break;
  }
  auto a = SymDim(e.a).eval(bindings), b = SymDim(e.b).eval(bindings);
  if (!a || !b) return std::nullopt;
  switch (e.op) {
    case '+': return *a + *b;
    case '-': return *a - *b;
    case '*': return *a * *b;
    case '/': return *b == 0 ? std::nullopt : std::optional<int64_t>(floor_div_int(*a, *b));
    case 'C': return *b == 0 ? std::nullopt : std::optional<int64_t>(-floor_div_int(-*a, *b));
    case 'M': return std::max(*a, *b);
    case 'm': return std::min(*a, *b);
    case 'B': return *a == 1 ? *b : *a;
  }
  return std::nullopt;
}

std::string SymDim::str() const {
  const Expr& e = *e_;
  switch (e.op) {
    case 'c': return std::to_string(e.value);
    case 's': return e.name;
    case 'u': return "?";
    case 'M': return "max(" + SymDim(e.a).str() + "," + SymDim(e.b).str() + ")";
    case 'm': return "min(" + SymDim(e.a).str() + "," + SymDim(e.b).str() + ")";
 case 'B': return "bcast(" + SymDim(e.a).str() + "," + SymDim(e.b).str() + ")";
    case 'C': {
      auto wrap = [](const std::shared_ptr<const Expr>& x) {
        std::string t = SymDim(x).str();
        return (x->op == 'c' || x->op == 's') ? t : "(" + t + ")";
      };
      return "ceil(" + wrap(e.a) + "/" + wrap(e.b) + ")";
    }
  }
  auto side = [&](const std::shared_ptr<const Expr>& x, bool right) {
    std::string s = SymDim(x).str();
    bool sum = x->op == '+' || x->op == '-';
    bool compound = x->op != 'c' && x->op != 's' && x->op != 'u';
    // a-(b+c), a/(b*c), (a+b)*c need parentheses; a+b*c and a*b*c do not.
    bool wrap = (e.op == '*' && (sum || (right && x->op == '/'))) || (e.op == '/' && (sum || (right && compound))) || (e.op == '-' && right && sum);
    return wrap ? "(" + s + ")" : s;
  };
  return side(e.a, false) + std::string(1, e.op) + side(e.b, true);
}

SymDim SymDim::binary(char op, const SymDim& a, const SymDim& b) {
  if (a.is_unknown() || b.is_unknown()) return unknown();
  auto e = std::make_shared<Expr>();
  e->op = op;
  e->a = a.e_;
  e->b = b.e_;
  e->key = "(" + a.key() + op + b.key() + ")";
  SymDim d(std::shared_ptr<const Expr>(std::move(e)));
  if (a.is_const() && b.is_const()) {  // fold: 3*4 is 12, x/0 is unknown
    auto v = d.eval({});
    return v ? SymDim(*v) : unknown();
  }
  return d;
}

SymDim operator+(const SymDim& a, const SymDim& b) {
  if (b.is_const() && b.value() == 0) return a;
  if (a.is_const() && a.value() == 0) return b;
  // a-3 rather than a+-3.
  if (!a.is_const() && b.is_const() && b.value() < 0 && b.value() > INT64_MIN) return a - SymDim(-b.value());
  return SymDim::binary('+', a, b);
}

SymDim operator-(const SymDim& a, const SymDim& b) {
  if (b.is_const() && b.value() == 0) return a;
  if (!a.is_unknown() && a.same_as(b)) return SymDim(0);
  return SymDim::binary('-', a, b);
}

SymDim operator*(const SymDim& a, const SymDim& b) {
  if (b.is_const() && b.value() == 1) return a;
  if (a.is_const() && a.value() == 1) return b;
  if ((a.is_const() && a.value() == 0) || (b.is_const() && b.value() == 0)) return SymDim(0);
  return SymDim::binary('*', a, b);
}

SymDim floor_div(const SymDim& a, const SymDim& b) {
  if (b.is_const() && b.value() == 1) return a;
  return SymDim::binary('/', a, b);
}

SymDim ceil_div(const SymDim& a, const SymDim& b) {
  if (b.is_const() && b.value() == 1) return a;
  return SymDim::binary('C', a, b);
}

SymDim max(const SymDim& a, const SymDim& b) {
  if (!a.is_unknown() && a.same_as(b)) return a;
  // Sizes are never negative: max(0, size) is the size.
  if (a.is_const() && a.value() <= 0 && non_negative(*b.e_)) return b;
  if (b.is_const() && b.value() <= 0 && non_negative(*a.e_)) return a;
  return SymDim::binary('M', a, b);
}

SymDim min(const SymDim& a, const SymDim& b) {
  if (!a.is_unknown() && a.same_as(b)) return a;
  // "To the end" in Slice is INT_MAX or more: no tensor dimension is that large.
  constexpr int64_t kHuge = 2147483647;
  if (b.is_const() && b.value() >= kHuge && !a.is_const()) return a;
  if (a.is_const() && a.value() >= kHuge && !b.is_const()) return b;
  return SymDim::binary('m', a, b);
}

SymDim broadcast(const SymDim& a, const SymDim& b) {
  if (a.is_const() && a.value() == 1) return b;
  if (b.is_const() && b.value() == 1) return a;
  if (!a.is_unknown() && a.same_as(b)) return a;
  // A dim other than 1 on one side fixes the result (the other side must match or be 1).
  if (a.is_const()) return a;
  if (b.is_const()) return b;
  return SymDim::binary('B', a, b);
}

std::string dims_str(const std::vector<SymDim>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + dims[i].str();
  return s + "]";
}

}  // namespace runnx
