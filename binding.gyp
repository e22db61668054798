{
  "variables": {"has_mpi": "<!(sh native/mpi-config.sh has)"},
  "targets": [
    {
      "target_name": "lmforge",
      "sources": [
        "native/src/addon.cc",
        "native/src/gemm.cc",
        "native/src/gemm_bf16.cc",
        "native/src/attention.cc",
        "native/src/sparse-attention.cc",
        "native/src/elementwise.cc",
        "native/src/rowwise.cc",
        "native/src/indexing.cc",
        "native/src/optim.cc",
        "native/src/shampoo.cc",
        "native/src/mmap.cc",
        "native/src/moe.cc",
        "native/src/quant.cc",
        "native/src/retrieval.cc"
      ],
      "include_dirs": ["native/include"],
      "cflags!": ["-fno-exceptions", "-O2", "-O1", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-O2", "-O1", "-O0"],
      "cflags": ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
      "ldflags": ["-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ],
  "conditions": [
    ["has_mpi==1", {
      "targets": [
        {
          "target_name": "lmforge_mpi",
          "sources": ["native/src/mpi.cc"],
          "include_dirs": ["native/include", "<!@(sh native/mpi-config.sh incdirs)"],
          "cflags!": ["-fno-exceptions", "-O2", "-O1", "-O0"],
          "cflags_cc!": ["-fno-exceptions", "-O2", "-O1", "-O0"],
          "cflags_cc": ["-O2", "-std=c++17"],
          "libraries": ["<!@(sh native/mpi-config.sh libs)", "-ldl"],
          "defines": ["NAPI_VERSION=8"]
        }
      ]
    }]
  ]
}
