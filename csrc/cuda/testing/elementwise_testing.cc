// runnx._C.cuda._testing: the element-wise launchers (elementwise.h) on numpy arrays.
#include <map>

#include "cuda/kernels/elementwise.h"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/strided_plan.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

template <typename E>
E lookup(const std::map<std::string, E>& table, const std::string& name) {
  auto it = table.find(name);
  if (it == table.end()) throw Error(ErrorKind::kInvalidArgument, "testing: unknown op " + name);
  return it->second;
}

py::array binary(const std::string& name, const py::array& a, const py::array& b, int64_t offset) {
  static const std::map<std::string, BinaryOp> ops = {
      {"add", BinaryOp::kAdd}, {"sub", BinaryOp::kSub}, {"mul", BinaryOp::kMul}, {"div", BinaryOp::kDiv},
      {"pow", BinaryOp::kPow}, {"max", BinaryOp::kMax}, {"min", BinaryOp::kMin}, {"equal", BinaryOp::kEqual},
      {"less", BinaryOp::kLess}, {"less_equal", BinaryOp::kLessOrEqual}, {"greater", BinaryOp::kGreater},
      {"greater_equal", BinaryOp::kGreaterOrEqual}};
  const BinaryOp op = lookup(ops, name);
  const DType t = dtype_of(a);
  const std::vector<int64_t> out_dims = broadcast_dims({dims_of(a), dims_of(b)});
  const DType out_t = op >= BinaryOp::kEqual ? DType::kBool : t;
  OffsetArray da = to_device_at(a, offset), db = to_device_at(b, offset), dy = device_output(out_dims, out_t, offset);
  launch_binary(op, t, da.ptr(), dims_of(a), db.ptr(), dims_of(b), dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, out_t);
}

py::array unary(const std::string& name, const py::array& x, float p0, float p1, int64_t offset, bool in_place) {
  static const std::map<std::string, Activation> acts = {
      {"relu", Activation::kRelu}, {"clip", Activation::kClip}, {"sigmoid", Activation::kSigmoid},
      {"tanh", Activation::kTanh}, {"gelu_erf", Activation::kGeluErf}, {"gelu_tanh", Activation::kGeluTanh},
      {"leaky_relu", Activation::kLeakyRelu}, {"hard_swish", Activation::kHardSwish}};
  static const std::map<std::string, UnaryOp> ops = {
      {"exp", UnaryOp::kExp}, {"log", UnaryOp::kLog}, {"sqrt", UnaryOp::kSqrt}, {"rsqrt", UnaryOp::kRsqrt},
      {"neg", UnaryOp::kNeg}, {"reciprocal", UnaryOp::kReciprocal}, {"abs", UnaryOp::kAbs}, {"erf", UnaryOp::kErf},
      {"floor", UnaryOp::kFloor}, {"ceil", UnaryOp::kCeil}, {"round", UnaryOp::kRound}, {"sin", UnaryOp::kSin},
      {"cos", UnaryOp::kCos}, {"sign", UnaryOp::kSign}, {"softplus", UnaryOp::kSoftplus}, {"elu", UnaryOp::kElu},
      {"hard_sigmoid", UnaryOp::kHardSigmoid}, {"identity", UnaryOp::kIdentity}};
  UnaryFn f;
  f.p0 = p0;
  f.p1 = p1;
  if (acts.count(name)) {
    f.op = UnaryOp::kActivation;
    f.act = acts.at(name);
  } else {
    f.op = lookup(ops, name);
  }
  const DType t = dtype_of(x);
  const std::vector<int64_t> dims = dims_of(x);
  OffsetArray dx = to_device_at(x, offset);
  OffsetArray dy = in_place ? OffsetArray{} : device_output(dims, t, offset);
  launch_unary(f, t, dx.ptr(), in_place ? dx.ptr() : dy.ptr(), numel(dims), nullptr);
  return to_host_at(in_place ? dx : dy, dims, t);
}

py::array where(const py::array& cond, const py::array& x, const py::array& y) {
  const DType t = dtype_of(x);
  const std::vector<int64_t> out_dims = broadcast_dims({dims_of(cond), dims_of(x), dims_of(y)});
  OffsetArray dc = to_device_at(cond, 0), dx = to_device_at(x, 0), dyy = to_device_at(y, 0);
  OffsetArray dout = device_output(out_dims, t, 0);
  launch_where(dc.ptr<bool>(), dims_of(cond), t, dx.ptr(), dims_of(x), dyy.ptr(), dims_of(y), dout.ptr(), nullptr);
  return to_host_at(dout, out_dims, t);
}

py::array cast(const py::array& x, const py::dtype& to) {
  const DType from = dtype_of(x), t = dtype_of(to);
  const std::vector<int64_t> dims = dims_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(dims, t, 0);
  launch_cast(from, dx.ptr(), t, dy.ptr(), numel(dims), nullptr);
  return to_host_at(dy, dims, t);
}

}  // namespace

void register_elementwise_testing(py::module_& m) {
  m.def("set_simple_kernels", &set_use_simple_kernels, py::arg("simple"),
        "force the plain kernels (as RUNNX_CUDA_SIMPLE=1) or the fast paths");
  m.def("use_simple_kernels", &use_simple_kernels);
  m.def("binary", &binary, py::arg("op"), py::arg("a"), py::arg("b"), py::arg("offset") = 0);
  m.def("unary", &unary, py::arg("op"), py::arg("x"), py::arg("p0") = 0.f, py::arg("p1") = 0.f,
        py::arg("offset") = 0, py::arg("in_place") = false);
  m.def("where", &where, py::arg("cond"), py::arg("x"), py::arg("y"));
  m.def("cast", &cast, py::arg("x"), py::arg("to"));
}

}  // namespace runnx::cuda::testing
