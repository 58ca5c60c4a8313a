"""`radsal users create|invite|list|deactivate`: account management from the shell.

Handy for the first admin on a server and for scripting rater invites; the same services as
the admin pages, so the same validation and audit trail (actor: none = the operator's shell).
"""

from __future__ import annotations

import argparse
import sys

from app.cli.session import cli_session
from app.errors import DomainError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("users", help="create, invite, list and deactivate users")
    usub = p.add_subparsers(dest="users_command", metavar="ACTION")
    usub.required = True

    create = usub.add_parser("create", help="create a user (prints an invite link without -p)")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=("admin", "researcher", "rater"))
    create.add_argument("--password", "-p", default=None, help="set this password directly")
    create.add_argument("--display-name", default="", help="name shown in the app")
    create.set_defaults(func=main)

    invite = usub.add_parser("invite", help="issue a new invite link (older links stop working)")
    invite.add_argument("username")
    invite.set_defaults(func=main)

    listing = usub.add_parser("list", help="list users with role, status and invite state")
    listing.set_defaults(func=main)

    deactivate = usub.add_parser("deactivate", help="lock a user out and end their sessions")
    deactivate.add_argument("username")
    deactivate.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except DomainError as exc:
        print(f"radsal users: {exc.message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.services.accounts import users as users_service

    settings = get_settings()
    with cli_session() as db:
        if args.users_command == "create":
            user, invite = users_service.create_user(
                db,
                actor=None,
                username=args.username,
                role=args.role,
                display_name=args.display_name,
                password=args.password,
                invite_hours=settings.invite_hours,
            )
            print(f"created {user.role} {user.username}")
            if invite is not None:
                print(f"invite link (valid {settings.invite_hours} h, single use):")
                print(invite.url(settings.base_url))
        elif args.users_command == "invite":
            user = users_service.get_user_by_username(db, args.username)
            invite = users_service.issue_invite(
                db, actor=None, user=user, hours=settings.invite_hours
            )
            print(invite.url(settings.base_url))
        elif args.users_command == "deactivate":
            user = users_service.get_user_by_username(db, args.username)
            users_service.deactivate_user(db, actor=None, user=user)
            print(f"deactivated {user.username}")
        else:
            rows = users_service.list_users(db)
            print(f"{'username':<24} {'role':<11} {'active':<7} {'last login':<17} invite")
            for row in rows:
                u = row.user
                last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
                print(
                    f"{u.username:<24} {u.role:<11} {'yes' if u.is_active else 'no':<7} "
                    f"{last:<17} {row.invite.state}"
                )
    return 0
