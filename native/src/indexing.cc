// Kernel family 'indexing' of the native backend (entry points registered in registerIndexing).
#include "napi_util.h"

namespace lmf {

void registerIndexing(napi_env, napi_value) {}

}  // namespace lmf
