// A tensor dimension as static inference sees it: an integer known at load time, a named
// symbol from a graph input ("batch", bound when a run's feeds arrive), an expression over
// symbols (batch*seq, (H+1)/2), or unknown (data-dependent: NonZero, TopK with a run-time k).
//
// Expressions fold as they are built (3*4 -> 12, x*1 -> x, x+0 -> x), so a dimension that does
// not depend on an input is always a plain integer. eval() binds symbols to run-time values.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace runnx {

using SymBindings = std::map<std::string, int64_t>;

class SymDim {
 public:
  SymDim() : SymDim(unknown()) {}
  SymDim(int64_t v);  // NOLINT: dimensions mix freely with integers
  static SymDim symbol(const std::string& name);
  static SymDim unknown();

  bool is_const() const;
  bool is_unknown() const;
  // The value; only meaningful when is_const().
  int64_t value() const;
  // Its value under run-time bindings; nullopt when it involves an unbound symbol or is unknown.
  std::optional<int64_t> eval(const SymBindings& b) const;
  // The same expression (structurally), so the same value for every binding.
  bool same_as(const SymDim& o) const { return key() == o.key(); }
  // "batch*seq", "12", "?" for unknown.
  std::string str() const;

  friend SymDim operator+(const SymDim& a, const SymDim& b);
  friend SymDim operator-(const SymDim& a, const SymDim& b);
  friend SymDim operator*(const SymDim& a, const SymDim& b);
  friend SymDim floor_div(const SymDim& a, const SymDim& b);
  friend SymDim ceil_div(const SymDim& a, const SymDim& b);
  friend SymDim max(const SymDim& a, const SymDim& b);
  friend SymDim min(const SymDim& a, const SymDim& b);
  // Numpy broadcasting of two dims that the model promises are compatible: 1 yields to the other.
  friend SymDim broadcast(const SymDim& a, const SymDim& b);
  // The factors of a product (batch*seq*64 -> batch, seq, 64); itself when not a product.
  std::vector<SymDim> factors() const;
  // The symbol's name when this is a plain symbol, else nullptr.
  const std::string* symbol_name() const;

  struct Expr;

 private:
  explicit SymDim(std::shared_ptr<const Expr> e) : e_(std::move(e)) {}
  const std::string& key() const;
  static SymDim binary(char op, const SymDim& a, const SymDim& b);
  std::shared_ptr<const Expr> e_;
};

// "[batch,3,H*2]".
std::string dims_str(const std::vector<SymDim>& dims);

}  // namespace runnx
