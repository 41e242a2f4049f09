// runnx._C.cuda._testing: Transpose, layout conversion, Slice, Expand, Concat and Gather
// (transpose.h, copy.h) on numpy arrays.
#include <cstring>

#include "cuda/kernels/copy.h"
#include "cuda/kernels/pad.h"
#include "cuda/kernels/transpose.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

int64_t elem_size(const py::array& a) { return static_cast<int64_t>(a.itemsize()); }

py::array transpose(const py::array& x, const std::vector<int64_t>& perm, int64_t offset) {
  const std::vector<int64_t> dims = dims_of(x);
  std::vector<int64_t> out_dims;
  for (int64_t p : perm) out_dims.push_back(p >= 0 && p < static_cast<int64_t>(dims.size()) ? dims[p] : 0);
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, offset), dy = device_output(out_dims, t, offset);
  launch_transpose(elem_size(x), dx.ptr(), dims, perm, dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

// x is NCHW ("nchw") or NHWC ("nhwc"); returns the other layout.
py::array layout_convert(const py::array& x, const std::string& from) {
  const std::vector<int64_t> d = dims_of(x);
  const bool nchw = from == "nchw";
  const int64_t n = d[0], c = nchw ? d[1] : d[3], h = nchw ? d[2] : d[1], w = nchw ? d[3] : d[2];
  const std::vector<int64_t> out_dims = nchw ? std::vector<int64_t>{n, h, w, c} : std::vector<int64_t>{n, c, h, w};
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_layout_convert(elem_size(x), nchw ? Layout::kNCHW : Layout::kNHWC, dx.ptr(), n, c, h * w, dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

py::array slice(const py::array& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& steps,
                const std::vector<int64_t>& out_dims) {
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_slice(elem_size(x), dx.ptr(), dims_of(x), starts, steps, dy.ptr(), out_dims, nullptr);
  return to_host_at(dy, out_dims, t);
}

py::array expand(const py::array& x, const std::vector<int64_t>& out_dims) {
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_expand(elem_size(x), dx.ptr(), dims_of(x), dy.ptr(), out_dims, nullptr);
  return to_host_at(dy, out_dims, t);
}

// numpy.concatenate(inputs, axis); `offset` shifts every buffer by that many elements.
py::array concat(const std::vector<py::array>& inputs, int64_t axis, int64_t offset) {
  std::vector<int64_t> out_dims = dims_of(inputs.at(0));
  const int64_t rank = static_cast<int64_t>(out_dims.size());
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_dims[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= out_dims[d];
  std::vector<OffsetArray> dev;
  std::vector<const void*> ptrs;
  std::vector<int64_t> sizes;
  out_dims[axis] = 0;
  for (const py::array& a : inputs) {
    dev.push_back(to_device_at(a, offset));
    ptrs.push_back(dev.back().ptr());
    sizes.push_back(a.shape(axis));
    out_dims[axis] += a.shape(axis);
  }
  const DType t = dtype_of(inputs[0]);
  OffsetArray dy = device_output(out_dims, t, offset);
  launch_concat(elem_size(inputs[0]), ptrs, sizes, outer, inner, dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

// numpy.take(data, indices, axis) with negative indices; returns (y, error_flag).
py::tuple gather(const py::array& data, const py::array& indices, int64_t axis, int64_t offset) {
  const std::vector<int64_t> d = dims_of(data), idx_dims = dims_of(indices);
  const int64_t rank = static_cast<int64_t>(d.size());
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= d[k];
  for (int64_t k = axis + 1; k < rank; ++k) inner *= d[k];
  std::vector<int64_t> out_dims(d.begin(), d.begin() + axis);
  out_dims.insert(out_dims.end(), idx_dims.begin(), idx_dims.end());
  out_dims.insert(out_dims.end(), d.begin() + axis + 1, d.end());
  const DType t = dtype_of(data);
  OffsetArray dd = to_device_at(data, offset), di = to_device_at(indices, 0), dy = device_output(out_dims, t, offset);
  OffsetArray flag = to_device_at(py::array_t<int32_t>(1), 0);
  check_cuda(cudaMemset(flag.ptr(), 0, sizeof(int32_t)), "cudaMemset");
  launch_gather(elem_size(data), dd.ptr(), outer, d[axis], inner, di.ptr(), dtype_of(indices), numel(idx_dims),
                dy.ptr(), flag.ptr<int>(), nullptr);
  py::array y = to_host_at(dy, out_dims, t);
  py::array f = to_host_at(flag, {1}, DType::kI32);
  return py::make_tuple(y, static_cast<const int32_t*>(f.data())[0]);
}

// numpy.pad(x, list(zip(begin, end)), mode) with `constant` (a 0-d array of x's dtype).
py::array pad(const py::array& x, const std::vector<int64_t>& begin, const std::vector<int64_t>& end,
              const std::string& mode, const py::array& constant) {
  const std::vector<int64_t> dims = dims_of(x);
  std::vector<int64_t> out_dims(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) out_dims[d] = dims[d] + begin.at(d) + end.at(d);
  const PadMode m = mode == "reflect" ? PadMode::kReflect
                    : mode == "edge"  ? PadMode::kEdge
                    : mode == "wrap"  ? PadMode::kWrap
                                      : PadMode::kConstant;
  uint64_t bits = 0;
  std::memcpy(&bits, constant.data(), std::min<size_t>(sizeof(bits), constant.itemsize()));
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_pad(elem_size(x), m, dx.ptr(), dims, begin, bits, dy.ptr(), out_dims, nullptr);
  return to_host_at(dy, out_dims, t);
}

}  // namespace

void register_copy_testing(py::module_& m) {
  m.def("transpose", &transpose, py::arg("x"), py::arg("perm"), py::arg("offset") = 0);
  m.def("layout_convert", &layout_convert, py::arg("x"), py::arg("from_layout"));
  m.def("slice", &slice, py::arg("x"), py::arg("starts"), py::arg("steps"), py::arg("out_dims"));
  m.def("expand", &expand, py::arg("x"), py::arg("out_dims"));
  m.def("concat", &concat, py::arg("inputs"), py::arg("axis"), py::arg("offset") = 0);
  m.def("pad", &pad, py::arg("x"), py::arg("begin"), py::arg("end"), py::arg("mode"), py::arg("constant"));
  m.def("gather", &gather, py::arg("data"), py::arg("indices"), py::arg("axis"), py::arg("offset") = 0);
}

}  // namespace runnx::cuda::testing
