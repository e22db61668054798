// Kernel family 'gemm' of the native backend (entry points registered in registerGemm).
#include "napi_util.h"

namespace lmf {

void registerGemm(napi_env, napi_value) {}

}  // namespace lmf
