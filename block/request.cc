#include "block/request.h"

namespace ice {

const char* IoOpName(IoOp op) {
  switch (op) {
    case IoOp::kRead:
      return "read";
    case IoOp::kWrite:
      return "write";
    case IoOp::kFlush:
      return "flush";
    case IoOp::kWriteZeroes:
      return "write-zeroes";
    case IoOp::kDiscard:
      return "discard";
  }
  return "?";
}

}  // namespace ice
