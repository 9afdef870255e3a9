"""`python -m vlmtune.engine.xtuner_main RECIPE ...`: xtuner's own trainer (same arguments), with the
package's compatibility fixes applied first. mmengine initialises distributed mode before it
builds the recipe's model, so the import through the recipe comes too late for the multi-process
CPU fix; `vlmtune train` therefore launches this module."""
from vlmtune.engine import compat

compat.apply()

from xtuner.tools.train import main  # noqa: E402

if __name__ == '__main__':
    main()
