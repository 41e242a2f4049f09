#include "ops/copy_util.h"

#include <algorithm>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/half.h"
#include "common/status.h"

namespace runnx {
namespace {

// Walks the multi-indices of `shape` in row-major order, keeping two linear offsets up to date.
struct Odometer {
  const int64_t* shape;
  const int64_t* a_st;
  const int64_t* b_st;
  int rank;
  std::vector<int64_t> idx;
  int64_t a = 0, b = 0;

  Odometer(const int64_t* s, const int64_t* as, const int64_t* bs, int r, int64_t linear)
      : shape(s), a_st(as), b_st(bs), rank(r), idx(r, 0) {
    for (int k = r - 1; k >= 0; --k) {
      idx[k] = linear % shape[k];
      linear /= shape[k];
      a += idx[k] * a_st[k];
      b += idx[k] * b_st[k];
    }
  }
  void next() {
    for (int k = rank - 1; k >= 0; --k) {
      a += a_st[k];
      b += b_st[k];
      if (++idx[k] < shape[k]) return;
      a -= a_st[k] * shape[k];
      b -= b_st[k] * shape[k];
      idx[k] = 0;
    }
  }
};

// Rows of `n` elements: dst row contiguous or strided, src strided (0 = broadcast one value).
template <typename U>
void copy_rows(uint8_t* D, const uint8_t* S, const Shape& s, const std::vector<int64_t>& d,
               const std::vector<int64_t>& r, ThreadPool& pool) {
  const int outer_rank = static_cast<int>(s.size()) - 1;
  const int64_t n = s.back(), dn = d.back(), sn = r.back();
  int64_t rows = 1;
  for (int k = 0; k < outer_rank; ++k) rows *= s[k];
  pool.parallel_for(rows, rows_grain(n), [&](int64_t begin, int64_t end) {
    Odometer od(s.data(), d.data(), r.data(), outer_rank, begin);
    for (int64_t row = begin; row < end; ++row, od.next()) {
      U* dp = reinterpret_cast<U*>(D) + od.a;
      const U* sp = reinterpret_cast<const U*>(S) + od.b;
      if (dn == 1 && sn == 1) {
        std::memcpy(dp, sp, n * sizeof(U));
      } else if (dn == 1 && sn == 0) {
        const U v = *sp;
        for (int64_t j = 0; j < n; ++j) dp[j] = v;
      } else if (dn == 1) {
        for (int64_t j = 0; j < n; ++j) dp[j] = sp[j * sn];
      } else {
        for (int64_t j = 0; j < n; ++j) dp[j * dn] = sp[j * sn];
      }
    }
  });
}

// dst[i * dp + j] = src[i + j * sn] over the block [i0, i1) x [j0, j1).
template <typename U>
inline void transpose_block_scalar(U* dst, int64_t dp, const U* src, int64_t sn, int64_t i0,
                                   int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i) {
    U* drow = dst + i * dp;
    const U* scol = src + i;
    for (int64_t j = j0; j < j1; ++j) drow[j] = scol[j * sn];
  }
}

template <typename U>
inline void transpose_block(U* dst, int64_t dp, const U* src, int64_t sn, int64_t i0, int64_t i1,
                            int64_t j0, int64_t j1) {
  transpose_block_scalar(dst, dp, src, sn, i0, i1, j0, j1);
}

#if defined(__SSE2__)
// 4-byte elements (float, int32): 4x4 register transposes with SSE2 (part of baseline x86-64);
// integer shuffles move the bits unchanged. Edges fall back to the scalar loop.
template <>
inline void transpose_block<uint32_t>(uint32_t* dst, int64_t dp, const uint32_t* src, int64_t sn,
                                      int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const int64_t i4 = i0 + (i1 - i0) / 4 * 4, j4 = j0 + (j1 - j0) / 4 * 4;
  for (int64_t i = i0; i < i4; i += 4) {
    for (int64_t j = j0; j < j4; j += 4) {
      const uint32_t* s = src + i + j * sn;
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + sn));
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * sn));
      __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 3 * sn));
      __m128i ab0 = _mm_unpacklo_epi32(a, b), cd0 = _mm_unpacklo_epi32(c, d);
      __m128i ab1 = _mm_unpackhi_epi32(a, b), cd1 = _mm_unpackhi_epi32(c, d);
      uint32_t* o = dst + i * dp + j;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi64(ab0, cd0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + dp), _mm_unpackhi_epi64(ab0, cd0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 2 * dp), _mm_unpacklo_epi64(ab1, cd1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 3 * dp), _mm_unpackhi_epi64(ab1, cd1));
    }
  }
  transpose_block_scalar(dst, dp, src, sn, i0, i4, j4, j1);  // right edge
  transpose_block_scalar(dst, dp, src, sn, i4, i1, j0, j1);  // bottom edge
}
#endif

// A transpose of the two innermost moving dims: dim `p` is contiguous in src, the last dim is
// contiguous in dst. Copying square tiles keeps both sides' cache lines in use.
template <typename U>
void copy_tiled(uint8_t* D, const uint8_t* S, const Shape& s, const std::vector<int64_t>& d,
                const std::vector<int64_t>& r, int p, ThreadPool& pool) {
  constexpr int64_t kTile = 32;
  const int last = static_cast<int>(s.size()) - 1;
  Shape os;
  std::vector<int64_t> od, osr;
  for (int k = 0; k < last; ++k)
    if (k != p) os.push_back(s[k]), od.push_back(d[k]), osr.push_back(r[k]);
  int64_t outer = 1;
  for (int64_t v : os) outer *= v;
  const int64_t m = s[p], n = s[last], dp = d[p], sn = r[last];
  const int64_t tiles = (m + kTile - 1) / kTile;
  const int64_t grain = std::max<int64_t>(1, kCopyGrainElems / (kTile * n));
  pool.parallel_for(outer * tiles, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      Odometer o(os.data(), od.data(), osr.data(), static_cast<int>(os.size()), item / tiles);
      U* dbase = reinterpret_cast<U*>(D) + o.a;
      const U* sbase = reinterpret_cast<const U*>(S) + o.b;
      const int64_t i0 = (item % tiles) * kTile, i1 = std::min(m, i0 + kTile);
      for (int64_t j0 = 0; j0 < n; j0 += kTile) {
        const int64_t j1 = std::min(n, j0 + kTile);
        transpose_block<U>(dbase, dp, sbase, sn, i0, i1, j0, j1);
      }
    }
  });
}

}  // namespace

void copy_strided(void* dst, const void* src, size_t esize, Shape shape,
                  std::vector<int64_t> dst_strides, std::vector<int64_t> src_strides,
                  ThreadPool& pool) {
  if (shape_numel(shape) == 0) return;
  // Drop size-1 dims and merge neighbours that are contiguous with each other on both sides.
  Shape s;
  std::vector<int64_t> d, r;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 1) continue;
    if (!s.empty() && d.back() == dst_strides[k] * shape[k] &&
        r.back() == src_strides[k] * shape[k]) {
      s.back() *= shape[k];
      d.back() = dst_strides[k];
      r.back() = src_strides[k];
    } else {
      s.push_back(shape[k]);
      d.push_back(dst_strides[k]);
      r.push_back(src_strides[k]);
    }
  }
  if (s.empty()) s = {1}, d = {1}, r = {1};
  auto* D = static_cast<uint8_t*>(dst);
  auto* S = static_cast<const uint8_t*>(src);
  const int last = static_cast<int>(s.size()) - 1;
  int p = -1;
  if (d[last] == 1 && r[last] != 1 && r[last] != 0 && s[last] >= 8)
    for (int k = 0; k < last; ++k)
      if (r[k] == 1 && s[k] >= 8) p = k;
  by_size(esize, [&](auto u) {
    using U = decltype(u);
    if (p >= 0)
      copy_tiled<U>(D, S, s, d, r, p, pool);
    else
      copy_rows<U>(D, S, s, d, r, pool);
  });
}

namespace {

// One run of the innermost map: `len` elements from src offset `src` (or the fill value if -1).
struct Segment {
  int64_t dst, len, src;
};

template <typename U>
void copy_maps_typed(U* D, const U* S, const Shape& out,
                     const std::vector<std::vector<int64_t>>& maps, const std::vector<int64_t>& st,
                     U fill, ThreadPool& pool) {
  const int outer_rank = static_cast<int>(out.size()) - 1;
  const int64_t n = out.back();
  const std::vector<int64_t>& m = maps.back();
  const int64_t sn = st.back();
  // Source offsets of the inner dim, and its runs: few long runs (Pad, crops) become memcpy.
  std::vector<int64_t> off(n);
  bool any_fill = false;
  for (int64_t j = 0; j < n; ++j) {
    off[j] = m[j] < 0 ? -1 : m[j] * sn;
    any_fill |= m[j] < 0;
  }
  std::vector<Segment> segs;
  for (int64_t j = 0; j < n;) {
    int64_t k = j + 1;
    if (off[j] < 0) {
      while (k < n && off[k] < 0) ++k;
    } else if (sn == 1) {
      while (k < n && off[k] == off[k - 1] + 1) ++k;
    }
    segs.push_back({j, k - j, off[j]});
    j = k;
  }
  const bool use_segs = static_cast<int64_t>(segs.size()) * 4 <= n;
  int64_t rows = 1;
  for (int k = 0; k < outer_rank; ++k) rows *= out[k];
  pool.parallel_for(rows, rows_grain(n), [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(outer_rank, 0);
    int64_t lin = begin;
    for (int k = outer_rank - 1; k >= 0; --k) idx[k] = lin % out[k], lin /= out[k];
    for (int64_t row = begin; row < end; ++row) {
      U* dp = D + row * n;
      int64_t base = 0;
      bool fill_row = false;
      for (int k = 0; k < outer_rank; ++k) {
        int64_t v = maps[k][idx[k]];
        fill_row |= v < 0;
        base += v * st[k];
      }
      if (fill_row) {
        for (int64_t j = 0; j < n; ++j) dp[j] = fill;
      } else if (use_segs) {
        const U* sp = S + base;
        for (const Segment& g : segs) {
          if (g.src < 0) {
            for (int64_t j = 0; j < g.len; ++j) dp[g.dst + j] = fill;
          } else {
            std::memcpy(dp + g.dst, sp + g.src, g.len * sizeof(U));
          }
        }
      } else if (any_fill) {
        const U* sp = S + base;
        for (int64_t j = 0; j < n; ++j) dp[j] = off[j] < 0 ? fill : sp[off[j]];
      } else {
        const U* sp = S + base;
        const int64_t* o = off.data();
        for (int64_t j = 0; j < n; ++j) dp[j] = sp[o[j]];
      }
      for (int k = outer_rank - 1; k >= 0; --k) {
        if (++idx[k] < out[k]) break;
        idx[k] = 0;
      }
    }
  });
}

}  // namespace

void copy_by_maps(void* dst, const void* src, size_t esize, const Shape& out,
                  const std::vector<std::vector<int64_t>>& maps,
                  const std::vector<int64_t>& src_strides, const void* fill, ThreadPool& pool) {
  if (shape_numel(out) == 0) return;
  if (out.empty()) {
    std::memcpy(dst, src, esize);
    return;
  }
  by_size(esize, [&](auto u) {
    using U = decltype(u);
    U f{};
    if (fill) std::memcpy(&f, fill, sizeof(U));
    copy_maps_typed<U>(static_cast<U*>(dst), static_cast<const U*>(src), out, maps, src_strides, f,
                       pool);
  });
}

void cast_scalar(double v, DType dt, void* out, const std::string& who) {
  auto put = [&](auto x) { std::memcpy(out, &x, sizeof(x)); };
  switch (dt) {
    case DType::kF32:
      return put(static_cast<float>(v));
    case DType::kF64:
      return put(v);
    case DType::kI64:
      return put(static_cast<int64_t>(v));
    case DType::kI32:
      return put(static_cast<int32_t>(v));
    case DType::kI16:
      return put(static_cast<int16_t>(v));
    case DType::kI8:
      return put(static_cast<int8_t>(v));
    case DType::kU8:
      return put(static_cast<uint8_t>(v));
    case DType::kU16:
      return put(static_cast<uint16_t>(v));
    case DType::kU32:
      return put(static_cast<uint32_t>(v));
    case DType::kU64:
      return put(static_cast<uint64_t>(v));
    case DType::kBool:
      return put(static_cast<uint8_t>(v != 0));
    case DType::kF16:
      return put(float_to_half(static_cast<float>(v)));
    case DType::kBF16:
      return put(float_to_bf16(static_cast<float>(v)));
    default:
      break;
  }
  fail(ErrorKind::kUnsupportedOp, who, ": a fill value of ", v, " for element type ",
       dtype_name(dt), " is not supported");
}

void fill_elements(void* dst, size_t esize, int64_t count, const void* value, ThreadPool& pool) {
  if (count <= 0) return;
  by_size(esize, [&](auto u) {
    using U = decltype(u);
    U v;
    std::memcpy(&v, value, sizeof(U));
    U* p = static_cast<U*>(dst);
    pool.parallel_for(count, kCopyGrainElems * 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = v;
    });
  });
}

}  // namespace runnx
