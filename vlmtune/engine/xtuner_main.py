"""`python -m vlmtune.engine.xtuner_main RECIPE ...`: xtuner's own trainer (same arguments), with the
package's compatibility fixes applied first. mmengine initialises distributed mode before it
builds the recipe's model, so the import through the recipe comes too late for the multi-process
CPU fix; `vlmtune train` therefore launches this module."""
import vlmtune.engine  # noqa: F401  (applies vlmtune.engine.compat)
from vlmtune.engine.recipes import enable_absolute_base_imports
from xtuner.tools.train import main

enable_absolute_base_imports()  # copied recipes' `from vlmtune.recipes._base_...` in editable installs

if __name__ == '__main__':
    main()
