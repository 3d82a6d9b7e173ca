from ai_employee.surfaces.cli import main

raise SystemExit(main())
