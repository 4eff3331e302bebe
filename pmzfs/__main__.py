from pmzfs.cli import main

raise SystemExit(main())
