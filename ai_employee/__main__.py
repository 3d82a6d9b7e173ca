from ai_employee.cli import main

raise SystemExit(main())
