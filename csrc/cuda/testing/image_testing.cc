// runnx._C.cuda._testing: depthwise convolution (depthwise.h) and Resize (resize.h) on numpy arrays.
#include <map>

#include "cuda/kernels/depthwise.h"
#include "cuda/kernels/resize.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

// x in `layout` ("nchw"/"nhwc"), weight [c*m, 1, kh, kw]; pads (top, left, bottom, right).
py::array depthwise_conv2d(const py::array& x, const py::array& weight, const std::string& layout,
                           const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                           const std::vector<int64_t>& pads, const py::object& bias, const py::object& residual,
                           const std::string& act, float p0, float p1, float alpha, float beta) {
  static const std::map<std::string, Activation> acts = {
      {"none", Activation::kNone}, {"relu", Activation::kRelu}, {"clip", Activation::kClip},
      {"sigmoid", Activation::kSigmoid}, {"leaky_relu", Activation::kLeakyRelu},
      {"hard_swish", Activation::kHardSwish}, {"gelu_erf", Activation::kGeluErf}};
  DepthwiseParams p;
  p.layout = layout == "nhwc" ? Layout::kNHWC : Layout::kNCHW;
  const std::vector<int64_t> d = dims_of(x), wd = dims_of(weight);
  const bool nhwc = p.layout == Layout::kNHWC;
  p.n = d[0], p.c = nhwc ? d[3] : d[1], p.h = nhwc ? d[1] : d[2], p.w = nhwc ? d[2] : d[3];
  p.multiplier = p.c ? wd[0] / p.c : 1;
  p.kernel_h = wd[2], p.kernel_w = wd[3];
  p.stride_h = strides[0], p.stride_w = strides[1];
  p.dilation_h = dilations[0], p.dilation_w = dilations[1];
  p.pad_top = pads[0], p.pad_left = pads[1];
  p.out_h = (p.h + pads[0] + pads[2] - ((p.kernel_h - 1) * p.dilation_h + 1)) / p.stride_h + 1;
  p.out_w = (p.w + pads[1] + pads[3] - ((p.kernel_w - 1) * p.dilation_w + 1)) / p.stride_w + 1;
  const int64_t oc = p.c * p.multiplier;
  const std::vector<int64_t> out_dims =
      nhwc ? std::vector<int64_t>{p.n, p.out_h, p.out_w, oc} : std::vector<int64_t>{p.n, oc, p.out_h, p.out_w};
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dw = to_device_at(weight, 0), dy = device_output(out_dims, t, 0);
  OffsetArray db, dr;
  Epilogue e;
  e.alpha = alpha;
  e.beta = beta;
  if (!bias.is_none()) {
    db = to_device_at(bias.cast<py::array>(), 0);
    e.bias = db.ptr();
  }
  if (!residual.is_none()) {
    dr = to_device_at(residual.cast<py::array>(), 0);
    e.residual = dr.ptr();
  }
  auto it = acts.find(act);
  if (it == acts.end()) throw Error(ErrorKind::kInvalidArgument, "testing: unknown activation " + act);
  e.act = it->second;
  e.p0 = p0;
  e.p1 = p1;
  launch_depthwise_conv2d(t, p, dx.ptr(), dw.ptr(), dy.ptr(), e, nullptr);
  return to_host_at(dy, out_dims, t);
}

// x in `layout`; scales (h, w) as ONNX's; out_size (h, w); mode, coordinate transformation and
// nearest rounding by their ONNX names.
py::array resize2d(const py::array& x, const std::string& layout, const std::vector<double>& scales,
                   const std::vector<int64_t>& out_size, const std::string& mode, const std::string& coord,
                   const std::string& rounding) {
  static const std::map<std::string, ResizeCoord> coords = {
      {"half_pixel", ResizeCoord::kHalfPixel}, {"half_pixel_symmetric", ResizeCoord::kHalfPixelSymmetric},
      {"pytorch_half_pixel", ResizeCoord::kPytorchHalfPixel}, {"align_corners", ResizeCoord::kAlignCorners},
      {"asymmetric", ResizeCoord::kAsymmetric}};
  static const std::map<std::string, NearestRounding> roundings = {
      {"round_prefer_floor", NearestRounding::kRoundPreferFloor},
      {"round_prefer_ceil", NearestRounding::kRoundPreferCeil}, {"floor", NearestRounding::kFloor},
      {"ceil", NearestRounding::kCeil}};
  Resize2dParams p;
  p.layout = layout == "nhwc" ? Layout::kNHWC : Layout::kNCHW;
  const bool nhwc = p.layout == Layout::kNHWC;
  const std::vector<int64_t> d = dims_of(x);
  p.n = d[0], p.c = nhwc ? d[3] : d[1], p.h = nhwc ? d[1] : d[2], p.w = nhwc ? d[2] : d[3];
  p.out_h = out_size.at(0), p.out_w = out_size.at(1);
  p.scale_h = scales.at(0), p.scale_w = scales.at(1);
  p.mode = mode == "linear" ? ResizeMode::kLinear : ResizeMode::kNearest;
  p.coord = coords.at(coord);
  p.rounding = roundings.at(rounding);
  const std::vector<int64_t> out_dims = nhwc ? std::vector<int64_t>{p.n, p.out_h, p.out_w, p.c}
                                             : std::vector<int64_t>{p.n, p.c, p.out_h, p.out_w};
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_resize2d(t, p, dx.ptr(), dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

}  // namespace

void register_image_testing(py::module_& m) {
  m.def("depthwise_conv2d", &depthwise_conv2d, py::arg("x"), py::arg("weight"), py::arg("layout"),
        py::arg("strides"), py::arg("dilations"), py::arg("pads"), py::arg("bias") = py::none(),
        py::arg("residual") = py::none(), py::arg("act") = "none", py::arg("p0") = 0.f, py::arg("p1") = 0.f,
        py::arg("alpha") = 1.f, py::arg("beta") = 1.f);
  m.def("resize2d", &resize2d, py::arg("x"), py::arg("layout"), py::arg("scales"), py::arg("out_size"),
        py::arg("mode"), py::arg("coord"), py::arg("rounding") = "round_prefer_floor");
}

}  // namespace runnx::cuda::testing
