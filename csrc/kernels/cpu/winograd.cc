#include "kernels/cpu/winograd.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/conv_simd.h"
#include "kernels/cpu/gemm.h"

namespace runnx {

float* conv_scratch(int slot, int64_t floats) {
  thread_local std::vector<float> bufs[4];
  std::vector<float>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < floats) b.resize(static_cast<size_t>(floats));
  return b.data();
}

namespace {

// G for F(4, 3), the 6 x 3 kernel transform, applied to one column (a0, a1, a2):
// rows (1/4, 0, 0), -(1, 1, 1)/6, -(1, -1, 1)/6, (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1).
inline void g_column(float a0, float a1, float a2, float* o, int64_t so) {
  const float s = a0 + a2, p = a0 * (1.f / 24) + a2 * (1.f / 6), q = a1 * (1.f / 12);
  o[0] = a0 * 0.25f;
  o[so] = (s + a1) * (-1.f / 6);
  o[2 * so] = (s - a1) * (-1.f / 6);
  o[3 * so] = p + q;
  o[4 * so] = p - q;
  o[5 * so] = a2;
}

// Zero-padded copy of one input plane onto the tile grid: xp[r, s] = x[r - pt, s - pl].
void pad_plane(const float* x, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t ph,
               int64_t pw, float* xp) {
  for (int64_t r = 0; r < ph; ++r) {
    float* dst = xp + r * pw;
    const int64_t ih = r - pt;
    if (ih < 0 || ih >= H) {
      std::memset(dst, 0, sizeof(float) * pw);
      continue;
    }
    const int64_t lo = std::min(pw, std::max<int64_t>(0, pl));  // first column inside
    const int64_t hi = std::max(lo, std::min(pw, pl + W));
    std::memset(dst, 0, sizeof(float) * lo);
    std::memcpy(dst + lo, x + ih * W + (lo - pl), sizeof(float) * (hi - lo));
    std::memset(dst + hi, 0, sizeof(float) * (pw - hi));
  }
}

// image(n, V, Mo, par) for the N images, V and Mo scratch of v_floats and mo_floats: whole
// images per pool task when every thread gets two (each its own V and Mo), else one image at a
// time with each phase split over the pool (par).
template <typename F>
void each_image(int64_t N, int64_t v_floats, int64_t mo_floats, ThreadPool& pool, const F& image) {
  const int64_t threads = pool.num_threads();
  if (N >= 2 * threads || threads == 1) {
    pool.parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
      float* V = conv_scratch(0, v_floats);
      float* Mo = conv_scratch(1, mo_floats);
      for (int64_t n = n0; n < n1; ++n) image(n, V, Mo, false);
    });
  } else {
    float* V = conv_scratch(0, v_floats);
    float* Mo = conv_scratch(1, mo_floats);
    for (int64_t n = 0; n < N; ++n) image(n, V, Mo, true);
  }
}

}  // namespace

WinogradF43::WinogradF43(const float* w, int64_t M, int64_t C, bool channels_last, ThreadPool* pool)
    : M_(M), C_(C) {
  // U[xi][m][c] = (G g G^T)[xi] in float, two 6x3 passes of g_column (~70 flops a kernel):
  // the double matrix products with G's zeros took ResNet-50's first run ~100 ms.
  // A block of channels at a time goes through a small buffer and out as 36 runs: element by
  // element, the 36 stores of a kernel sat M * C floats apart (256 KB for 256 x 256, all in one
  // L1 set) and missed every time: ResNet-50's first run spent ~25 ms per 256-channel layer here.
  std::vector<float> raw(static_cast<size_t>(36 * M * C));
  float* U = raw.data();
  auto transform = [&](int64_t m0, int64_t m1) {
    constexpr int64_t kBlock = 64;
    float block[36 * kBlock];
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const int64_t n = std::min(kBlock, C - c0);
        for (int64_t c = c0; c < c0 + n; ++c) {
          const float* g = w + (m * C + c) * 9;
          float t[6][3], u[6][6];  // t = G g, u = t G^T
          for (int j = 0; j < 3; ++j) g_column(g[j], g[3 + j], g[6 + j], &t[0][j], 3);
          for (int r = 0; r < 6; ++r) g_column(t[r][0], t[r][1], t[r][2], &u[r][0], 1);
          for (int xi = 0; xi < 36; ++xi) block[xi * kBlock + c - c0] = u[xi / 6][xi % 6];
        }
        for (int xi = 0; xi < 36; ++xi)
          std::memcpy(U + (xi * M + m) * C + c0, block + xi * kBlock, n * sizeof(float));
      }
  };
  // Packed for the GEMM that reads it, so each U[xi] streams front to back: channels first as A
  // (the packed-A kernels, 12x16 under AVX-512), channels last as B (U[xi]^T's panels).
  if (channels_last) Ut_.resize(36);  // the other stays empty
  else U_.resize(36);
  auto pack = [&](int64_t x0, int64_t x1) {
    for (int64_t xi = x0; xi < x1; ++xi) {
      if (channels_last) Ut_[xi] = pack_b_f32(C, M, U + xi * M * C, C, true);
      else U_[xi] = pack_a_f32(M, C, U + xi * M * C, C);
    }
  };
  // On the pool when given (a kernel's first run: the other threads would only wait for it).
  if (pool) {
    pool->parallel_for(M, 1, transform);
    pool->parallel_for(36, 1, pack);
  } else {
    transform(0, M);
    pack(0, 36);
  }
}

void WinogradF43::run(const float* x, int64_t N, int64_t H, int64_t W, int64_t pt, int64_t pl,
                      int64_t OH, int64_t OW, const ConvEpilogue& e, float* y,
                      ThreadPool& pool) const {
  const ConvSimd& simd = conv_simd();
  WinogradGeom g{C_, M_, OH, OW, (OH + 3) / 4, (OW + 3) / 4};
  const int64_t T = g.tiles(), Tp = g.tile_stride(), ph = g.pad_h(), pw = g.pad_w();
  const int64_t ldv = C_ * Tp, ldm = M_ * Tp;

  // The three phases for image n; `par` spreads each phase over the pool (few images), else
  // the caller runs them all (one image per task).
  auto image = [&](int64_t n, float* V, float* Mo, bool par) {
    const float* xn = x + n * C_ * H * W;
    float* yn = y + n * M_ * OH * OW;
    const float* rn = e.residual ? e.residual + n * M_ * OH * OW : nullptr;
    auto inputs = [&](int64_t c0, int64_t c1) {
      float* xp = conv_scratch(2, ph * pw);
      for (int64_t c = c0; c < c1; ++c) {
        pad_plane(xn + c * H * W, H, W, pt, pl, ph, pw, xp);
        simd.winograd_input(xp, g, c, V, ldv);
      }
    };
    auto gemms = [&](int64_t i0, int64_t i1) {
      for (int64_t xi = i0; xi < i1; ++xi)
        gemm_f32_packed_a(U_[xi], T, V + xi * ldv, Tp, Mo + xi * ldm, Tp, 0.f, GemmEpilogue{}, nullptr);
    };
    auto outputs = [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        simd.winograd_output(Mo, ldm, g, m, e, rn ? rn + m * OH * OW : nullptr,
                             yn + m * OH * OW);
    };
    if (par) {
      pool.parallel_for(C_, 1, inputs);
      pool.parallel_for(36, 1, gemms);
      pool.parallel_for(M_, 1, outputs);
    } else {
      inputs(0, C_);
      gemms(0, 36);
      outputs(0, M_);
    }
  };
  each_image(N, 36 * ldv, 36 * ldm, pool, image);
}

void WinogradF43::run_nhwc(const float* x, int64_t N, int64_t H, int64_t W, int64_t pt,
                           int64_t pl, int64_t OH, int64_t OW, const ConvEpilogue& e, float* y,
                           ThreadPool& pool) const {
  const ConvSimd& simd = conv_simd();
  const WinogradGeom g{C_, M_, OH, OW, (OH + 3) / 4, (OW + 3) / 4};
  const int64_t T = g.tiles(), ldv = T * C_, ldm = T * M_;
  // Tiles per task in the transforms: ~16K floats of V or Mo written or read.
  const int64_t grain = std::max<int64_t>(1, 16384 / (36 * std::max(C_, M_)));
  auto image = [&](int64_t n, float* V, float* Mo, bool par) {
    const float* xn = x + n * H * W * C_;
    float* yn = y + n * OH * OW * M_;
    const float* rn = e.residual ? e.residual + n * OH * OW * M_ : nullptr;
    auto inputs = [&](int64_t t0, int64_t t1) { simd.winograd_input_nhwc(xn, H, W, pt, pl, g, t0, t1, V, ldv); };
    auto gemms = [&](int64_t i0, int64_t i1) {
      for (int64_t xi = i0; xi < i1; ++xi)
        gemm_f32_packed(T, V + xi * ldv, C_, Ut_[xi], Mo + xi * ldm, M_, 0.f, GemmEpilogue{}, nullptr);
    };
    auto outputs = [&](int64_t t0, int64_t t1) { simd.winograd_output_nhwc(Mo, ldm, g, t0, t1, e, rn, yn); };
    if (par) {
      pool.parallel_for(T, grain, inputs);
      pool.parallel_for(36, 1, gemms);
      pool.parallel_for(T, grain, outputs);
    } else {
      inputs(0, T);
      gemms(0, 36);
      outputs(0, T);
    }
  };
  each_image(N, 36 * ldv, 36 * ldm, pool, image);
}

}  // namespace runnx
