// The Batcher binding. submit() converts the feeds while holding the GIL (the numpy arrays are
// used in place and kept alive by a reference stored in the request), then queues without
// blocking. Workers never touch Python: finished requests wait in a CompletionChannel, and
// drain(), called by whoever watches the channel's eventfd with the GIL held, turns them into
// (future, ok, outputs-or-exception, queue_us, compute_us, batch_size) tuples and drops the
// references. Requests are created and destroyed only here, always with the GIL held.
//
// An event loop submits in two steps: prepare() converts and checks a request (errors raise at
// once) into a PreparedRequest, and dispatch() hands over everything one loop pass prepared: a
// lone request may run inline (GIL released) when the batcher is idle, otherwise all are queued
// with one wake-up of the leader.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings/error_classes.h"
#include "bindings/numpy_tensor.h"
#include "runtime/session.h"
#include "serving/batcher.h"
#include "serving/fast_infer.h"

namespace py = pybind11;

namespace runnx {

namespace {

void release(Request* r) {
  Py_XDECREF(static_cast<PyObject*>(r->user));
  delete r;
}

using OwnedRequest = std::unique_ptr<Request, void (*)(Request*)>;

PyObject* rejection_class(SubmitResult res) {
  return res == SubmitResult::kQueueFull ? queue_full_error_class() : batcher_closed_error_class();
}

std::string rejection_message(const Batcher& b, SubmitResult res) {
  if (res == SubmitResult::kQueueFull)
    return str_cat("the batcher's queue is full (max_queue_size=", b.options().max_queue_size, "); retry later");
  return "the batcher is closed";
}

PyObject* exception_class(const Request& r) {
  switch (r.outcome) {
    case Outcome::kDeadlineExceeded: return deadline_exceeded_error_class();
    case Outcome::kClosed: return batcher_closed_error_class();
    default: return error_class(r.error_kind);
  }
}

// A checked request not yet queued; dropping it drops its reference to the future and feeds.
struct PreparedRequest {
  OwnedRequest req{nullptr, &release};
};

class PyBatcher {
 public:
  PyBatcher(py::object session, BatcherOptions options) : session_(std::move(session)) {
    Session& s = session_.cast<Session&>();
    core_ = std::make_unique<Batcher>(s, std::move(options));
  }

  ~PyBatcher() {
    {
      py::gil_scoped_release nogil;
      core_->close(false, -1);
    }
    for (auto& ch : channels_)
      for (Request* r : ch->take_all()) release(r);
  }

  int open_channel(bool nonblocking) {
    channels_.push_back(std::make_unique<CompletionChannel>(nonblocking));
    return static_cast<int>(channels_.size()) - 1;
  }

  CompletionChannel& channel(int index) {
    RUNNX_CHECK(index >= 0 && index < static_cast<int>(channels_.size()), kInvalidArgument, "no channel ",
                index);
    return *channels_[index];
  }

  // Converts the feeds (numpy arrays used in place) and checks them against the model.
  OwnedRequest make_request(const py::dict& feeds, const py::object& output_names, int priority,
                            int64_t timeout_us, int channel_index, const py::object& future) {
    OwnedRequest req(new Request(), &release);
    py::list keep;
    for (auto item : feeds) {
      std::string name = py::str(item.first);
      py::array a = py::array::ensure(item.second, py::array::c_style);
      if (!a) {
        PyErr_Clear();
        fail(ErrorKind::kInvalidArgument, "input '", name, "' is not convertible to a numpy array");
      }
      Tensor t;
      t.dtype = dtype_from_numpy(a.dtype(), name);
      t.shape.assign(a.shape(), a.shape() + a.ndim());
      t.data = const_cast<void*>(a.data());
      req->feed_names.push_back(std::move(name));
      req->feeds.push_back(std::move(t));
      keep.append(a);
    }
    if (!output_names.is_none())
      for (auto o : output_names) req->output_names.push_back(py::str(o));
    RUNNX_CHECK(timeout_us >= 0, kInvalidArgument, "timeout_us must be >= 0, got ", timeout_us);
    req->priority = priority;
    req->timeout_us = timeout_us;
    req->channel = &channel(channel_index);
    core_->prepare(*req);
    req->user = py::make_tuple(future, keep).release().ptr();
    return req;
  }

  void submit(const py::dict& feeds, const py::object& output_names, int priority, int64_t timeout_us,
              int channel_index, const py::object& future) {
    OwnedRequest req = make_request(feeds, output_names, priority, timeout_us, channel_index, future);
    SubmitResult res = core_->submit(req.get());
    if (res == SubmitResult::kAccepted) {
      req.release();  // the batcher hands it back through the channel
      return;
    }
    PyErr_SetObject(rejection_class(res), py::str(rejection_message(*core_, res)).ptr());
    throw py::error_already_set();
  }

  PreparedRequest prepare(const py::dict& feeds, const py::object& output_names, int priority,
                          int64_t timeout_us, int channel_index, const py::object& future) {
    return PreparedRequest{make_request(feeds, output_names, priority, timeout_us, channel_index, future)};
  }

  // Hands over one loop pass's prepared requests (each at most once). Returns the answers known
  // at once, as drain() does: the inline run's, and refusals (queue full, closed).
  py::list dispatch(const py::list& prepared) {
    py::list out;
    if (prepared.size() == 1) {
      PreparedRequest& p = prepared[0].cast<PreparedRequest&>();
      RUNNX_CHECK(p.req, kInvalidArgument, "this request was dispatched already");
      bool ran;
      {
        py::gil_scoped_release nogil;
        ran = core_->run_inline(*p.req);
      }
      if (ran) {
        OwnedRequest r = std::move(p.req);
        out.append(answer_tuple(*r));
        return out;
      }
    }
    bool queued = false;
    for (py::handle h : prepared) {
      PreparedRequest& p = h.cast<PreparedRequest&>();
      if (!p.req) continue;
      SubmitResult res = core_->submit(p.req.get(), false);
      if (res == SubmitResult::kAccepted) {
        p.req.release();  // the batcher hands it back through the channel
        queued = true;
        continue;
      }
      py::tuple user = py::reinterpret_borrow<py::tuple>(static_cast<PyObject*>(p.req->user));
      out.append(py::make_tuple(user[0], false, py::handle(rejection_class(res))(py::str(rejection_message(*core_, res))),
                                0, 0, 0));
      p.req.reset();
    }
    if (queued) core_->notify();
    return out;
  }

  py::list drain(int channel_index) {
    std::vector<Request*> done = channel(channel_index).take_all();
    // Own them all first: whatever fails below, every request is freed and its reference dropped.
    std::vector<OwnedRequest> owned;
    owned.reserve(done.size());
    for (Request* r : done) owned.emplace_back(r, &release);
    py::list out;
    for (auto& r : owned) out.append(answer_tuple(*r));
    return out;
  }

  void close(bool drain, double timeout_s) {
    py::gil_scoped_release nogil;  // workers never need the GIL; resolver threads may
    core_->close(drain, timeout_s);
  }

  Batcher& core() { return *core_; }

 private:
  // (future, ok, outputs dict or exception, queue_us, compute_us, batch_size) of an answered request.
  py::tuple answer_tuple(Request& r) {
    py::tuple user = py::reinterpret_borrow<py::tuple>(static_cast<PyObject*>(r.user));
    bool ok = r.outcome == Outcome::kOk;
    py::object payload;
    if (ok) {
      try {
        py::dict d;
        for (size_t k = 0; k < r.outputs.size(); ++k) d[py::str(r.output_names[k])] = to_numpy(std::move(r.outputs[k]));
        payload = std::move(d);
      } catch (const Error& e) {  // e.g. an output dtype numpy lacks: this request fails alone
        ok = false;
        core_->recount_ok_as_failed();
        payload = py::handle(error_class(e.kind()))(py::str(e.what()));
      } catch (py::error_already_set& e) {
        ok = false;
        core_->recount_ok_as_failed();
        payload = e.value();
      }
    } else {
      payload = py::handle(exception_class(r))(py::str(r.error));
    }
    return py::make_tuple(user[0], ok, payload, r.queue_us, r.compute_us, r.batch_size);
  }

  py::object session_;  // keeps the Session alive while workers use it
  std::unique_ptr<Batcher> core_;
  std::vector<std::unique_ptr<CompletionChannel>> channels_;
};


// The server's fast inference path (serving/fast_infer.h) as the Python server sees it. Each
// request taken holds a reference to its connection (the protocol object); each model one to
// (served model, Batcher binding), dropped when the last request of that model is freed.
class PyFastInfer {
 public:
  PyFastInfer(std::string auth_header, int64_t max_body_bytes, std::string request_id_prefix,
              std::vector<double> latency_bounds, std::vector<double> batch_bounds)
      : core_(std::move(auth_header), max_body_bytes, std::move(request_id_prefix)),
        latency_bounds_(std::move(latency_bounds)),
        batch_bounds_(std::move(batch_bounds)) {}

  ~PyFastInfer() {
    for (FastRequest* f : core_.take_prepared()) free_request(f);
  }

  // Teaches one served request (see FastInfer); returns the model's stats to fold into its metrics.
  std::shared_ptr<FastStats> learn(const std::string& path, py::object model, py::object batcher,
                                   const std::string& header, const py::list& inputs, const py::list& outputs,
                                   const std::string& response_prefix, int priority, int64_t timeout_us,
                                   int64_t rows) {
    auto t = std::make_shared<FastTemplate>();
    for (py::handle h : inputs) {
      py::tuple in = py::reinterpret_borrow<py::tuple>(h);
      FastTemplate::Input x;
      x.name = in[0].cast<std::string>();
      x.dtype = dtype_from_numpy(py::dtype::from_args(in[1]), x.name);
      x.shape = in[2].cast<Shape>();
      x.bytes = in[3].cast<size_t>();
      RUNNX_CHECK(x.dtype != DType::kString && x.bytes == static_cast<size_t>(shape_numel(x.shape)) * dtype_size(x.dtype),
                  kInvalidArgument, "input '", x.name, "' cannot take the fast path");
      t->binary_bytes += x.bytes;
      t->inputs.push_back(std::move(x));
    }
    for (py::handle h : outputs) {
      py::tuple out = py::reinterpret_borrow<py::tuple>(h);
      t->output_names.push_back(out[0].cast<std::string>());
      t->output_heads.push_back(out[1].cast<std::string>());
      t->output_binary.push_back(out[2].cast<bool>());
    }
    t->response_prefix = response_prefix;
    t->priority = priority;
    t->timeout_us = timeout_us;
    t->rows = rows;
    std::shared_ptr<FastModel> m = core_.find_model(model.ptr());
    if (!m) {
      PyBatcher& b = batcher.cast<PyBatcher&>();
      PyObject* owner = py::make_tuple(model, batcher).release().ptr();
      m = std::shared_ptr<FastModel>(new FastModel(), [](FastModel* p) {
        Py_XDECREF(static_cast<PyObject*>(p->owner));  // the GIL is held wherever models are dropped
        delete p;
      });
      m->batcher = &b.core();
      m->owner = owner;
      m->stats = std::make_shared<FastStats>(latency_bounds_, batch_bounds_);
      core_.add_model(model.ptr(), m);
    }
    core_.add_template(*m, header, std::move(t));
    core_.add_route(path, m);
    return m->stats;
  }

  // Takes a complete learned request (its connection `proto` is answered later); returns the
  // number of requests awaiting dispatch(), 0 when not taken.
  size_t take(py::handle data, py::handle proto) {
    if (!PyBytes_Check(data.ptr())) return 0;
    std::string_view bytes(PyBytes_AS_STRING(data.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(data.ptr())));
    FastRequest* f = core_.take(bytes, proto.ptr());
    if (!f) return 0;
    Py_INCREF(proto.ptr());
    return core_.prepared_count();
  }

  // Hands over what take() holds: one model's compatible requests run inline as one batch when
  // its batcher is idle and its batches are short (max_inline_us); otherwise all are queued. Returns the answers known at once, as drain() does.
  py::list dispatch() {
    std::vector<FastRequest*> reqs = core_.take_prepared();
    std::vector<FastRequest*> answered;
    // All for one idle model, compatible: one batch run here (no worker wake-up, no eventfd).
    Batcher* batcher = reqs.empty() ? nullptr : reqs[0]->model->batcher;
    for (FastRequest* f : reqs)
      if (f->model->batcher != batcher) batcher = nullptr;
    if (batcher) {
      std::vector<Request*> group;
      group.reserve(reqs.size());
      for (FastRequest* f : reqs) group.push_back(&f->req);
      bool ran;
      {
        py::gil_scoped_release nogil;
        ran = batcher->run_inline(group.data(), group.size());
      }
      if (ran) answered.swap(reqs);
    }
    if (!reqs.empty()) core_.submit_all(reqs, answered);
    return answers(answered);
  }

  // Finished requests: (proto, response bytes) for a success, (proto, (model, exception, e2e_s,
  // request id, path)) for a failure, which the Python side words.
  py::list drain() {
    std::vector<Request*> done = core_.channel().take_all();
    std::vector<FastRequest*> fs;
    fs.reserve(done.size());
    for (Request* r : done) fs.push_back(static_cast<FastRequest*>(r->user));
    return answers(fs);
  }

  void clear() { core_.clear(); }
  FastInfer& core() { return core_; }

 private:
  static void free_request(FastRequest* f) {
    Py_XDECREF(static_cast<PyObject*>(f->user));
    delete f;
  }

  py::list answers(std::vector<FastRequest*>& fs) {
    // Own them all first: whatever fails below, every request is freed.
    std::vector<std::unique_ptr<FastRequest, void (*)(FastRequest*)>> owned;
    owned.reserve(fs.size());
    for (FastRequest* f : fs) owned.emplace_back(f, &free_request);
    py::list out;
    for (auto& f : owned) {
      py::handle proto(static_cast<PyObject*>(f->user));
      if (core_.settle(*f)) {
        const std::string json = core_.response_json(*f);
        const size_t n = core_.response_size(*f, json);
        py::bytes body(nullptr, n);  // filled in place: the bytes object is still private
        core_.render_response(*f, json, PyBytes_AS_STRING(body.ptr()));
        out.append(py::make_tuple(proto, std::move(body)));
        continue;
      }
      py::object exc;
      if (f->refused != SubmitResult::kAccepted)
        exc = py::handle(rejection_class(f->refused))(py::str(rejection_message(*f->model->batcher, f->refused)));
      else
        exc = py::handle(exception_class(f->req))(py::str(f->req.error));
      const double e2e = std::chrono::duration<double>(std::chrono::steady_clock::now() - f->t0).count();
      py::tuple owner = py::reinterpret_borrow<py::tuple>(static_cast<PyObject*>(f->model->owner));
      out.append(py::make_tuple(proto, py::make_tuple(owner[0], exc, e2e, core_.request_id(*f), f->path)));
    }
    return out;
  }

  FastInfer core_;
  std::vector<double> latency_bounds_, batch_bounds_;
};

py::dict take_stats(FastStats& s) {
  auto hist = [](const FastStats::Histogram& h) { return py::make_tuple(h.counts, h.sum, h.count); };
  py::dict d;
  d["success"] = s.success;
  d["queue"] = hist(s.queue);
  d["compute"] = hist(s.compute);
  d["e2e"] = hist(s.e2e);
  d["batch"] = hist(s.batch);
  d["success_ns"] = s.success_ns;
  d["queue_ns"] = s.queue_ns;
  d["compute_ns"] = s.compute_ns;
  d["inference_count"] = s.inference_count;
  d["last_inference_ms"] = s.last_inference_ms;
  py::dict execs;
  for (const auto& kv : s.batch_execs) execs[py::int_(kv.first)] = py::make_tuple(kv.second.first, kv.second.second);
  d["batch_execs"] = execs;
  s.reset();
  return d;
}

}  // namespace

void register_serving(py::module_& m) {
  py::class_<PreparedRequest>(m, "PreparedRequest");
  py::class_<PyBatcher>(m, "Batcher")
      .def(py::init([](py::object session, int64_t max_batch_size, int64_t max_queue_delay_us,
                       std::vector<int64_t> preferred_batch_sizes, int64_t max_queue_size, int instance_count,
                       int64_t max_inline_us) {
             BatcherOptions o;
             o.max_batch_size = max_batch_size;
             o.max_queue_delay_us = max_queue_delay_us;
             o.preferred_batch_sizes = std::move(preferred_batch_sizes);
             o.max_queue_size = max_queue_size;
             o.instance_count = instance_count;
             o.max_inline_us = max_inline_us;
             return std::make_unique<PyBatcher>(std::move(session), std::move(o));
           }),
           py::arg("session"), py::arg("max_batch_size"), py::arg("max_queue_delay_us"),
           py::arg("preferred_batch_sizes"), py::arg("max_queue_size"), py::arg("instance_count"),
           py::arg("max_inline_us"))
      .def("open_channel", &PyBatcher::open_channel, py::arg("nonblocking"))
      .def("channel_fd", [](PyBatcher& b, int i) { return b.channel(i).fd(); }, py::arg("channel"))
      .def("poke", [](PyBatcher& b, int i) { b.channel(i).poke(); }, py::arg("channel"))
      .def("submit", &PyBatcher::submit, py::arg("feeds"), py::arg("output_names"), py::arg("priority"),
           py::arg("timeout_us"), py::arg("channel"), py::arg("future"))
      .def("prepare", &PyBatcher::prepare, py::arg("feeds"), py::arg("output_names"), py::arg("priority"),
           py::arg("timeout_us"), py::arg("channel"), py::arg("future"))
      .def("dispatch", &PyBatcher::dispatch, py::arg("prepared"))
      .def("drain", &PyBatcher::drain, py::arg("channel"))
      .def("close", &PyBatcher::close, py::arg("drain"), py::arg("timeout_s"))
      .def("closed", [](PyBatcher& b) { return b.core().closed(); })
      .def("queue_depth", [](PyBatcher& b) { return b.core().queue_depth(); })
      .def("stats", [](PyBatcher& b) {
        BatcherStats s = b.core().stats();
        py::dict d;
        d["requests_ok"] = s.requests_ok;
        d["requests_failed"] = s.requests_failed;
        d["requests_rejected"] = s.requests_rejected;
        d["requests_expired"] = s.requests_expired;
        d["batches"] = s.batches;
        d["inline_runs"] = s.inline_runs;
        d["queue_us"] = s.queue_us;
        d["compute_us"] = s.compute_us;
        py::dict sizes;
        for (size_t i = 0; i < s.batch_sizes.size(); ++i)
          if (s.batch_sizes[i]) sizes[py::int_(i)] = s.batch_sizes[i];
        d["batch_sizes"] = sizes;
        return d;
      });

  py::class_<FastStats, std::shared_ptr<FastStats>>(m, "FastStats")
      .def("take", &take_stats, "Counts and sums since the last take, then resets them");
  py::class_<PyFastInfer>(m, "FastInfer")
      .def(py::init<std::string, int64_t, std::string, std::vector<double>, std::vector<double>>(),
           py::arg("auth_header"), py::arg("max_body_bytes"), py::arg("request_id_prefix"),
           py::arg("latency_bounds"), py::arg("batch_bounds"))
      .def("fd", [](PyFastInfer& f) { return f.core().channel().fd(); })
      .def("set_date", [](PyFastInfer& f, const std::string& line) { f.core().set_date_line(line); }, py::arg("line"))
      .def("next_rid", [](PyFastInfer& f) { return f.core().next_request_number(); })
      .def("take_responses_ok", [](PyFastInfer& f) { return f.core().take_responses_ok(); })
      .def("taken", [](PyFastInfer& f) { return f.core().taken(); })
      .def("knows", [](PyFastInfer& f, const std::string& path, const std::string& header) {
        return f.core().has_template(path, header);
      }, py::arg("path"), py::arg("header"))
      .def("learn", &PyFastInfer::learn, py::arg("path"), py::arg("model"), py::arg("batcher"), py::arg("header"),
           py::arg("inputs"), py::arg("outputs"), py::arg("response_prefix"), py::arg("priority"),
           py::arg("timeout_us"), py::arg("rows"))
      .def("take", &PyFastInfer::take, py::arg("data"), py::arg("proto"))
      .def("dispatch", &PyFastInfer::dispatch)
      .def("drain", &PyFastInfer::drain)
      .def("clear", &PyFastInfer::clear);
}

}  // namespace runnx
