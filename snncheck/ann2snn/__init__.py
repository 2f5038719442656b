"""ANN to SNN conversion, layer by layer: the QCFS maths (`qcfs`), the shipped QCFS network (`model`), runs of an
ANN and its SNNs with hooks (`runs`), the per-chunk analysis (`analysis`) and the plan that puts them through the
pipeline (`build`). `snncheck ann2snn` is the command line."""
