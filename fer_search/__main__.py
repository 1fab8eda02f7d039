from fer_search.cli import main

raise SystemExit(main())
