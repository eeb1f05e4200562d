from r1console.cli import main

raise SystemExit(main())
