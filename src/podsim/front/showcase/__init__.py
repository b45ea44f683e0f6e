"""`podsim showcase`: could DeepSeek train its next model on Huawei Ascend, and why does it serve
there instead? (docs/showcase.md)"""

from podsim.front.showcase.run import showcase

__all__ = ["showcase"]
