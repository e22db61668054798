// Kernel family 'elementwise' of the native backend (entry points registered in registerElementwise).
#include "napi_util.h"

namespace lmf {

void registerElementwise(napi_env, napi_value) {}

}  // namespace lmf
