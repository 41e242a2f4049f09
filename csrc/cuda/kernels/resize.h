// Resize of the two spatial dims of NCHW or NHWC images (contiguous, same layout in and out),
// nearest or (bi)linear, with ONNX's coordinate transformations and nearest rounding modes.
// scale_h/scale_w are ONNX's scales (output / input as given, or out_h / h when sizes were
// given); the caller computes out_h/out_w. Source coordinates are computed in double with the
// ONNX formulas in the CPU kernel's order, so nearest ties round as on the CPU. Linear
// interpolates between the two neighbours of the source coordinate, clamping indices to the
// image (so positions outside repeat the edge). fp32 or fp16 (fp32 arithmetic).
// Not here: cubic, antialias, exclude_outside, tf_crop_and_resize (CPU fallback).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "cuda/kernels/layout.h"

namespace runnx::cuda {

enum class ResizeMode : int32_t { kNearest, kLinear };
enum class ResizeCoord : int32_t { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric };
enum class NearestRounding : int32_t { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

struct Resize2dParams {
  Layout layout = Layout::kNCHW;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t out_h = 0, out_w = 0;
  double scale_h = 1, scale_w = 1;
  ResizeMode mode = ResizeMode::kNearest;
  ResizeCoord coord = ResizeCoord::kHalfPixel;
  NearestRounding rounding = NearestRounding::kRoundPreferFloor;
};

void launch_resize2d(DType dtype, const Resize2dParams& p, const void* x, void* y, cudaStream_t stream);

}  // namespace runnx::cuda
