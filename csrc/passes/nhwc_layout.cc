// Channels-last layout for convolution chains (level 99). The convolutions of a chain (MobileNet's
// inverted residual blocks, ResNet's bottlenecks) become NhwcConv nodes
// (com.runnx, ops/conv_nhwc.cc) whose activations are [N, H, W, C] from one conv to the next:
// the 1x1 convolutions are then one GEMM with the weights packed at load (no per-run packing of
// the activations) and the depthwise ones work on 8 channels per vector. Reorders sit only at
// the chain's borders: a Transpose to NHWC where a chain reads a value made outside it (a first
// group-1 conv on few channels, a model's stem, reads NCHW directly), a Transpose back to NCHW
// for every value something outside the chain (or the graph's outputs) reads.
// A chain output read only by GlobalAveragePool -> Flatten(axis 1) (MobileNetV2's head) is
// averaged in NHWC by ReduceMean(axes 1, 2, keepdims) instead: [N, 1, 1, C] flattens alike.
//
// A chain is a set of Conv / FusedConv nodes (float32 constant 4-D weights, group 1 or
// depthwise) connected through their X and Z inputs. Group-1 3x3 stride-1 convolutions (Winograd)
// join only with channel counts that are multiples of 8 (the channels-last transforms' vectors);
// the others stay NCHW and split chains. A chain needs a depthwise conv and one more member, or
// kMinGroup1Chain group-1 members: a lone conv would pay a reorder on each side for nothing.
#include <map>
#include <numeric>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// FusedConv's residual input, Conv and FusedConv share X (0), W (1), B (2).
constexpr size_t kZ = 3;
// A first group-1 conv with at most this many input channels reads the NCHW input itself.
constexpr int64_t kNchwReadMaxChannels = 16;
// Chains of group-1 convs only (ResNet's) go channels last from this many members: their 1x1
// convs then need no packing of the activations and Winograd's GEMMs none either (ResNet-50 b1,
// 2 threads, per-node minimums against NCHW: 1x1 convs -8%, Winograd -15%, the whole run -8%).
constexpr int kMinGroup1Chain = 3;

struct Candidate {
  bool depthwise = false;
  bool winograd = false;  // 3x3, stride and dilation 1, group 1
  int64_t in_channels = 0;
  int64_t kernel_size = 1;
};

bool is_conv(const Node& n) {
  return is_onnx_op(n, "Conv") || (n.op_type == "FusedConv" && n.domain == kRunnxDomain);
}

bool candidate_of(const Node& n, const GraphIndex& idx, Candidate& c) {
  if (!is_conv(n) || n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0].empty())
    return false;
  const Tensor* w = idx.constant(n.inputs[1]);
  if (!w || w->dtype != DType::kF32 || w->rank() != 4 || w->numel() == 0) return false;
  const int64_t group = n.get_int("group", 1);
  c.depthwise = group > 1 && w->shape[1] == 1 && group == w->shape[0];
  if (group != 1 && !c.depthwise) return false;
  if (c.depthwise && w->shape[2] > 16) return false;
  c.in_channels = c.depthwise ? group : w->shape[1];
  c.kernel_size = w->shape[2] * w->shape[3];
  const std::vector<int64_t> s = n.get_ints("strides"), d = n.get_ints("dilations");
  const bool unit = (s.empty() || s == std::vector<int64_t>{1, 1}) &&
                    (d.empty() || d == std::vector<int64_t>{1, 1});
  // 3x3 stride 1 takes Winograd: channels last only on whole vectors of channels.
  c.winograd = !c.depthwise && w->shape[2] == 3 && w->shape[3] == 3 && unit;
  return !c.winograd || (c.in_channels % 8 == 0 && w->shape[0] % 8 == 0);
}

int find(std::vector<int>& parent, int i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

Node transpose_node(const std::string& name, const std::string& in, const std::string& out,
                    std::vector<int64_t> perm) {
  Node t;
  t.name = name;
  t.op_type = "Transpose";
  t.inputs = {in};
  t.outputs = {out};
  Attribute a;
  a.name = "perm";
  a.type = Attribute::Type::kInts;
  a.ints = std::move(perm);
  t.attrs.push_back(std::move(a));
  return t;
}

// The GlobalAveragePool reading chain output y, when it is y's only reader (y no graph output)
// and a Flatten(axis 1) is the only reader of its result: the node index, else -1.
int pooled_then_flattened(const Graph& g, const GraphIndex& idx, const std::string& y) {
  const int pool = sole_consumer(idx, y);
  if (pool < 0 || !is_onnx_op(g.nodes[pool], "GlobalAveragePool")) return -1;
  const int flat = sole_consumer(idx, g.nodes[pool].outputs[0]);
  if (flat < 0 || !is_onnx_op(g.nodes[flat], "Flatten") ||
      g.nodes[flat].get_int("axis", 1) != 1 || g.nodes[flat].inputs[0] != g.nodes[pool].outputs[0])
    return -1;
  return pool;
}

// That pool becomes ReduceMean over the NHWC value's pixels, keepdims: [N, 1, 1, C] flattens to
// the same [N, C] as [N, C, 1, 1], so no reorder back is needed (MobileNetV2's head, bench at 1
// thread: b32 2.2 -> 0.6 ms, b1 24 -> 11 us). Its output takes a new name (its shape differs);
// the Flatten reads that.
void average_nhwc(Model& model, FreshNames& fresh, int pool, const std::string& x) {
  Graph& g = model.graph;
  Node& n = g.nodes[pool];
  const std::string old_out = n.outputs[0];
  n.op_type = "ReduceMean";
  n.domain.clear();
  n.attrs = {int_attr("keepdims", 1)};
  n.inputs = {x};
  if (model.opset("") >= 18) {  // axes as an input
    Tensor axes = Tensor::empty(DType::kI64, {2});
    axes.ptr<int64_t>()[0] = 1;
    axes.ptr<int64_t>()[1] = 2;
    n.inputs.push_back(fresh(n.name + "_axes"));
    g.initializers.emplace_back(n.inputs.back(), std::move(axes));
  } else {
    Attribute axes;
    axes.name = "axes";
    axes.type = Attribute::Type::kInts;
    axes.ints = {1, 2};
    n.attrs.push_back(std::move(axes));
  }
  n.outputs = {fresh(old_out + "_nhwc")};
  for (Node& r : g.nodes)
    for (std::string& in : r.inputs)
      if (in == old_out) in = n.outputs[0];
}

}  // namespace

int pass_nhwc_layout(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  const int n_nodes = static_cast<int>(g.nodes.size());
  std::map<int, Candidate> cand;
  for (int k = 0; k < n_nodes; ++k) {
    Candidate c;
    if (candidate_of(g.nodes[k], idx, c)) cand[k] = c;
  }
  // A residual must come from a chain member (then it is already channels-last); drop the
  // others until none is left.
  auto producer_in = [&](const std::string& v) {
    const int p = v.empty() ? -1 : idx.producer(v);
    return p >= 0 && cand.count(p) ? p : -1;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = cand.begin(); it != cand.end();) {
      const Node& n = g.nodes[it->first];
      if (n.inputs.size() > kZ && !n.inputs[kZ].empty() && producer_in(n.inputs[kZ]) < 0) {
        it = cand.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
  if (cand.empty()) return 0;
  std::vector<int> parent(n_nodes);
  std::iota(parent.begin(), parent.end(), 0);
  for (const auto& [k, c] : cand) {
    const Node& n = g.nodes[k];
    for (size_t slot : {size_t{0}, kZ})
      if (slot < n.inputs.size()) {
        const int p = producer_in(n.inputs[slot]);
        if (p >= 0) parent[find(parent, p)] = find(parent, k);
      }
  }
  // A short chain would pay a reorder on each side for little: one with a depthwise conv needs
  // another member, one of group-1 convs only kMinGroup1Chain members.
  std::map<int, bool> has_depthwise;
  std::map<int, int> members;
  for (const auto& [k, c] : cand) {
    has_depthwise[find(parent, k)] |= c.depthwise;
    ++members[find(parent, k)];
  }
  std::map<int, Candidate> chain;
  for (const auto& [k, c] : cand) {
    const int root = find(parent, k);
    if (members[root] >= (has_depthwise[root] ? 2 : kMinGroup1Chain)) chain[k] = c;
  }
  if (chain.empty()) return 0;

  FreshNames fresh(idx);
  std::map<std::string, std::string> nhwc;  // NCHW value made in the chain -> its NHWC name
  for (const auto& [k, c] : chain) {
    const std::string& y = g.nodes[k].outputs[0];
    nhwc[y] = fresh(y + "_nhwc");
  }
  std::vector<Node> added;
  std::map<std::string, std::string> to_nhwc;  // values made outside, reordered once each
  auto nhwc_input = [&](const std::string& v) {
    auto it = nhwc.find(v);
    if (it != nhwc.end()) return it->second;
    auto& t = to_nhwc[v];
    if (t.empty()) {
      t = fresh(v + "_nhwc");
      added.push_back(transpose_node(fresh(v + "_to_nhwc"), v, t, {0, 2, 3, 1}));
    }
    return t;
  };
  // Readers outside the chain (or the graph's outputs) keep the NCHW value: counted on the
  // graph as it was, before any member is rewritten.
  for (const auto& [k, c] : chain) {
    const std::string& y = g.nodes[k].outputs[0];
    int inside = 0;
    for (int r : idx.consumers(y)) {
      if (!chain.count(r)) continue;
      const Node& rn = g.nodes[r];
      for (size_t slot = 0; slot < rn.inputs.size(); ++slot)
        if (rn.inputs[slot] == y && (slot == 0 || slot == kZ)) ++inside;
    }
    if (idx.uses(y) == inside) continue;
    if (const int pool = pooled_then_flattened(g, idx, y); pool >= 0 && inside == 0) {
      average_nhwc(model, fresh, pool, nhwc.at(y));
      continue;
    }
    added.push_back(transpose_node(fresh(y + "_to_nchw"), nhwc.at(y), y,
                                   {0, 3, 1, 2}));
  }
  for (const auto& [k, c] : chain) {
    Node& n = g.nodes[k];
    Node f;
    f.name = n.name;
    f.op_type = "NhwcConv";
    f.domain = kRunnxDomain;
    f.attrs = n.attrs;
    f.inputs = n.inputs;
    const std::string& x = n.inputs[0];
    // (Winograd reads channels-last input only.)
    if (!nhwc.count(x) && !c.depthwise && !c.winograd && c.kernel_size > 1 &&
        c.in_channels <= kNchwReadMaxChannels) {
      f.attrs.push_back(int_attr("nchw_input", 1));
    } else {
      f.inputs[0] = nhwc_input(x);
    }
    if (f.inputs.size() > kZ && !f.inputs[kZ].empty()) f.inputs[kZ] = nhwc.at(f.inputs[kZ]);
    f.outputs = {nhwc.at(n.outputs[0])};
    n = std::move(f);
  }
  g.nodes.insert(g.nodes.end(), added.begin(), added.end());
  ensure_runnx_domain(model);
  return static_cast<int>(chain.size());
}

}  // namespace runnx
