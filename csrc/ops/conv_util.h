// Window geometry shared by Conv, ConvTranspose and the pools: attribute parsing (auto_pad,
// kernel_shape, strides, dilations, pads), output sizes, and the normalisation of 1-D/2-D/3-D
// windows to three spatial dims (leading dims of size 1) so one loop nest serves every rank.
#pragma once
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "common/status.h"
#include "ir/graph.h"
#include "kernels/cpu/conv_epilogue.h"
#include "kernels/cpu/gemm.h"

namespace runnx {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

inline AutoPad parse_auto_pad(const Node& node) {
  const std::string s = node.get_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  if (s == "VALID") return AutoPad::kValid;
  fail(ErrorKind::kInvalidModel, node.label(),
       ": auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '", s, "'");
}

// The window attributes as written in the model; empty vectors mean "not given".
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::kNotSet;
  std::vector<int64_t> kernel, strides, dilations, pads;

  explicit WindowAttrs(const Node& node) {
    auto_pad = parse_auto_pad(node);
    kernel = node.get_ints("kernel_shape");
    strides = node.get_ints("strides");
    dilations = node.get_ints("dilations");
    pads = node.get_ints("pads");
    for (int64_t v : kernel)
      RUNNX_CHECK(v > 0, kInvalidModel, node.label(), ": kernel_shape values must be positive");
    for (int64_t v : strides)
      RUNNX_CHECK(v > 0, kInvalidModel, node.label(), ": strides must be positive");
    for (int64_t v : dilations)
      RUNNX_CHECK(v > 0, kInvalidModel, node.label(), ": dilations must be positive");
    for (int64_t v : pads)
      RUNNX_CHECK(v >= 0, kInvalidModel, node.label(), ": pads must be non-negative");
    RUNNX_CHECK(pads.size() % 2 == 0, kInvalidModel, node.label(),
                ": pads must have an even length");
    if (!kernel.empty()) check_rank(node, static_cast<int64_t>(kernel.size()));
  }

  // Attribute lengths must agree with the number of spatial dims.
  void check_rank(const Node& node, int64_t n) const {
    auto ok = [&](const std::vector<int64_t>& v, int64_t want) {
      return v.empty() || static_cast<int64_t>(v.size()) == want;
    };
    RUNNX_CHECK(ok(kernel, n) && ok(strides, n) && ok(dilations, n) && ok(pads, 2 * n),
                kInvalidModel, node.label(),
                ": kernel_shape/strides/dilations/pads lengths do not match ", n,
                " spatial dim(s)");
  }
};

// One window op's spatial geometry, padded to 3 dims: index 0 is the outermost spatial dim.
struct Geom3 {
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1};
  std::array<int64_t, 3> pb{0, 0, 0}, pe{0, 0, 0};  // pads at the start / end
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
};

// Geometry for inputs of spatial shape `in` and kernel `k` (Conv and the pools). ceil_mode is the
// pools' option; windows that would start past the padded input are dropped, as PyTorch and ORT do.
inline Geom3 window_geometry(const Node& node, const WindowAttrs& a, const std::vector<int64_t>& in,
                             const std::vector<int64_t>& k, bool ceil_mode = false) {
  const int64_t n = static_cast<int64_t>(in.size());
  a.check_rank(node, n);
  RUNNX_CHECK(n >= 1 && n <= 3, kUnsupportedOp, node.label(), ": ", n,
              " spatial dims are not supported (1 to 3 are)");
  Geom3 g;
  const int64_t o = 3 - n;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = a.strides.empty() ? 1 : a.strides[i];
    const int64_t d = a.dilations.empty() ? 1 : a.dilations[i];
    const int64_t ek = (k[i] - 1) * d + 1;  // the dilated window's extent
    int64_t pb = 0, pe = 0, out = 0;
    switch (a.auto_pad) {
      case AutoPad::kSameUpper:
      case AutoPad::kSameLower: {
        out = (in[i] + s - 1) / s;
        const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in[i]);
        pb = a.auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
        pe = total - pb;
        break;
      }
      case AutoPad::kValid:
      case AutoPad::kNotSet: {
        if (a.auto_pad == AutoPad::kNotSet && !a.pads.empty()) {
          pb = a.pads[i];
          pe = a.pads[i + n];
        }
        const int64_t span = in[i] + pb + pe - ek;
        RUNNX_CHECK(span >= 0, kInvalidArgument, node.label(), ": spatial dim ", i, " of size ",
                    in[i], " (padded by ", pb, "+", pe, ") is smaller than the window extent ", ek);
        out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (ceil_mode && (out - 1) * s >= in[i] + pb) --out;
        break;
      }
    }
    g.in[o + i] = in[i];
    g.out[o + i] = out;
    g.k[o + i] = k[i];
    g.s[o + i] = s;
    g.d[o + i] = d;
    g.pb[o + i] = pb;
    g.pe[o + i] = pe;
  }
  return g;
}

// [lo, hi): the output positions o with 0 <= off + o * s < n (the taps that land inside).
inline void valid_range(int64_t n, int64_t out, int64_t s, int64_t off, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = off >= n ? 0 : std::min(out, (n - 1 - off) / s + 1);
  lo = std::min(lo, out);
  hi = std::max(hi, lo);
}

// FusedConv's activation / activation_params attributes as an epilogue (ops/conv.cc).
ConvEpilogue parse_conv_activation(const Node& node);
// The same epilogue for the sgemm: bias per row (NCHW: W * X) or per column (X^T * W^T) (ops/conv.cc).
GemmEpilogue conv_gemm_epilogue(const ConvEpilogue& e, bool bias_per_row);

}  // namespace runnx
