from afftok.cli import main

raise SystemExit(main())
