// Kernel family 'rowwise' of the native backend (entry points registered in registerRowwise).
#include "napi_util.h"

namespace lmf {

void registerRowwise(napi_env, napi_value) {}

}  // namespace lmf
